"""TFRecord files and ``tf.train.Example`` protobufs, read and written without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64  length            little-endian
    uint32  masked CRC32C     of the 8 length bytes
    bytes   data[length]      here: a serialised tf.train.Example or SequenceExample
    uint32  masked CRC32C     of data

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8`` (mod 2**32). Files
compressed with GZIP (TensorFlow's ``TFRecordOptions("GZIP")``) are read transparently.

The protobuf messages (``tensorflow/core/example/{example,feature}.proto``) are decoded
by a minimal wire-format parser::

    Example         { Features features = 1; }
    SequenceExample { Features context = 1; FeatureLists feature_lists = 2; }
    Features        { map<string, Feature> feature = 1; }
    FeatureLists    { map<string, FeatureList> feature_list = 1; }
    FeatureList     { repeated Feature feature = 1; }
    Feature         { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                              Int64List int64_list = 3; } }

A small encoder for the same messages (:func:`encode_example`,
:func:`encode_sequence_example`) and a TFRecord writer (:func:`write_tfrecord`) make
tiny test files and fixtures.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vmtool.errors import FormatError, VmtoolError

__all__ = [
    "crc32c",
    "masked_crc32c",
    "Feature",
    "ProtoError",
    "parse_example",
    "read_tfrecord",
    "is_tfrecord",
    "write_tfrecord",
    "frame_record",
    "bytes_feature",
    "float_feature",
    "int64_feature",
    "encode_example",
    "encode_sequence_example",
]

# --- CRC-32C (Castagnoli) ---------------------------------------------------------------------

_POLY = 0x82F63B78  # reflected 0x1EDC6F41


def _make_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()
_NP_TABLE = np.array(_TABLE, dtype=np.uint32)
_LANE_LOG2 = 8  # the vectorised path cuts the data into lanes of 256 bytes
_NUMPY_MIN = 2048  # below this many bytes the plain loop is faster


def _crc_loop(data, reg: int) -> int:
    t = _TABLE
    for b in data:
        reg = t[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


def _tables(images: np.ndarray) -> np.ndarray:
    """Byte tables ``(4, 256)`` of the GF(2)-linear map whose images of bits 0..31 are *images*."""
    b = np.arange(256)
    out = np.zeros((4, 256), dtype=np.uint32)
    for i in range(4):
        for bit in range(8):
            out[i] ^= np.where((b >> bit) & 1, images[8 * i + bit], 0).astype(np.uint32)
    return out


def _apply(tables: np.ndarray, reg: np.ndarray) -> np.ndarray:
    return (tables[0][reg & 0xFF] ^ tables[1][(reg >> 8) & 0xFF]
            ^ tables[2][(reg >> 16) & 0xFF] ^ tables[3][reg >> 24])


@functools.lru_cache(maxsize=64)
def _zeros_map(log2n: int) -> np.ndarray:
    """Tables of the map 'feed 2**log2n zero bytes to the CRC register'."""
    if log2n == 0:
        bits = np.uint32(1) << np.arange(32, dtype=np.uint32)
        images = _NP_TABLE[bits & 0xFF] ^ (bits >> 8)
    else:
        half = _zeros_map(log2n - 1)
        bits = np.uint32(1) << np.arange(32, dtype=np.uint32)
        images = _apply(half, _apply(half, bits))
    return _tables(images)


def _crc_numpy(data, reg: int) -> int:
    """Same as :func:`_crc_loop`: all 256-byte lanes run side by side, then are combined."""
    lane = 1 << _LANE_LOG2
    n = len(data)
    k = n // lane
    cols = np.frombuffer(data, dtype=np.uint8, count=k * lane).reshape(k, lane).T.copy()  # (lane, k)
    # a start value of the register equals XOR-ing its 4 bytes into the first data bytes
    cols[:4, 0] ^= np.frombuffer(reg.to_bytes(4, "little"), dtype=np.uint8)
    lanes = np.zeros(k, dtype=np.uint32)
    table = _NP_TABLE
    for row in cols:
        lanes = table[(lanes ^ row) & 0xFF] ^ (lanes >> 8)
    # combine neighbours: crc(a + b) = zeros(len(b)) applied to crc(a), XOR crc(b)
    level = _LANE_LOG2
    while lanes.size > 1:
        if lanes.size % 2:
            lanes = np.concatenate([np.zeros(1, dtype=np.uint32), lanes])  # an empty lane in front
        lanes = _apply(_zeros_map(level), lanes[0::2]) ^ lanes[1::2]
        level += 1
    return _crc_loop(memoryview(data)[k * lane:], int(lanes[0]))


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of *data*, continuing from *crc* (the CRC of the bytes before).

    ``crc32c(b"123456789") == 0xE3069283``. Large inputs take a vectorised numpy path
    (tens of MB/s); small ones a table loop.
    """
    data = memoryview(data).cast("B")
    reg = (crc ^ 0xFFFFFFFF) & 0xFFFFFFFF
    reg = _crc_numpy(data, reg) if len(data) >= _NUMPY_MIN else _crc_loop(data, reg)
    return reg ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC-32C that TFRecord stores."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --- TFRecord framing ---------------------------------------------------------------------------


def _open(path: Path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return (gzip.open(path, "rb") if gz else open(path, "rb")), gz


def is_tfrecord(path: str | os.PathLike) -> bool:
    """Whether *path* starts like a TFRecord file (a first length with a valid CRC)."""
    try:
        fh, _ = _open(Path(path))
        with fh:
            head = fh.read(12)
    except (OSError, EOFError):
        return False
    return len(head) == 12 and masked_crc32c(head[:8]) == struct.unpack("<I", head[8:])[0]


def read_tfrecord(path: str | os.PathLike) -> Iterator[bytes]:
    """Yield the records of a TFRecord file, checking both CRCs of each.

    Raises
    ------
    FormatError
        A truncated file or a CRC mismatch (the message names the record and its byte
        offset).
    VmtoolError
        The file does not exist.
    """
    p = Path(path)
    if not p.is_file():
        raise VmtoolError("no such file" if not p.exists() else "is not a file", p)
    try:
        fh, gz = _open(p)
    except OSError as exc:
        raise VmtoolError(f"cannot read: {exc.strerror or exc}", p) from exc
    size = None if gz else p.stat().st_size
    where = "uncompressed byte" if gz else "byte"
    with fh:
        index, pos = 0, 0
        while True:
            try:
                head = fh.read(12)
                if not head:
                    return
                if len(head) < 12:
                    raise FormatError(f"truncated TFRecord: record {index} at {where} {pos} has "
                                      f"{len(head)} of its 12 header bytes", p)
                (length,) = struct.unpack("<Q", head[:8])
                (stored,) = struct.unpack("<I", head[8:])
                if masked_crc32c(head[:8]) != stored:
                    raise FormatError(f"record {index} at {where} {pos}: CRC of the length does not match "
                                      "(not a TFRecord file, or damaged)", p)
                if size is not None and pos + 12 + length + 4 > size:
                    raise FormatError(f"truncated TFRecord: record {index} at byte {pos} needs "
                                      f"{length + 4} more bytes, the file has {size - pos - 12}", p)
                data = fh.read(length)
                tail = fh.read(4)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise FormatError(f"damaged compressed TFRecord near record {index}: {exc}", p) from exc
            if len(data) < length or len(tail) < 4:
                raise FormatError(f"truncated TFRecord: record {index} at {where} {pos} is cut short", p)
            (stored,) = struct.unpack("<I", tail)
            computed = masked_crc32c(data)
            if computed != stored:
                raise FormatError(f"record {index} at {where} {pos}: CRC of the data does not match (stored "
                                  f"0x{stored:08x}, computed 0x{computed:08x}); the file is damaged", p)
            yield data
            index += 1
            pos += 16 + length


def frame_record(data: bytes) -> bytes:
    """One record in TFRecord framing."""
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", masked_crc32c(head)) + data + struct.pack("<I", masked_crc32c(data))


def write_tfrecord(path: str | os.PathLike, records: Iterable[bytes], *, compress: bool = False) -> Path:
    """Write *records* (serialised protobufs) to a TFRecord file; return its path.

    Not atomic: meant for test files and fixtures. *compress* writes GZIP.
    """
    p = Path(path)
    opener = gzip.open if compress else open
    with opener(p, "wb") as fh:
        for rec in records:
            fh.write(frame_record(bytes(rec)))
    return p


# --- protobuf wire format: decoding ------------------------------------------------------------


class ProtoError(ValueError):
    """A message that does not follow the protobuf wire format (or the expected schema)."""


@dataclass(frozen=True)
class Feature:
    """A decoded ``tf.train.Feature``.

    ``kind`` is ``"bytes"`` (``value``: list of bytes), ``"float"`` (float32 array),
    ``"int64"`` (int64 array) or ``"none"`` (no list set).
    """

    kind: str
    value: object

    def __len__(self) -> int:
        return len(self.value)  # type: ignore[arg-type]


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise ProtoError(f"truncated varint at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtoError(f"varint longer than 10 bytes at byte {pos}")


def _fields(buf, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field, wire_type, a, b)``: the value (varint) or the byte span ``[a, b)``."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ProtoError(f"field number 0 at byte {pos}")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value, pos
        elif wire == 1:
            if pos + 8 > end:
                raise ProtoError(f"truncated 64-bit field at byte {pos}")
            yield field, wire, pos, pos + 8
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise ProtoError(f"field {field} at byte {pos} claims {n} bytes, {end - pos} are left")
            yield field, wire, pos, pos + n
            pos += n
        elif wire == 5:
            if pos + 4 > end:
                raise ProtoError(f"truncated 32-bit field at byte {pos}")
            yield field, wire, pos, pos + 4
            pos += 4
        else:
            raise ProtoError(f"unsupported wire type {wire} (field {field}) at byte {pos}")


def _expect(wire: int, want: int, what: str) -> None:
    if wire != want:
        raise ProtoError(f"{what} has wire type {wire}, expected {want}")


def _feature(buf, start: int, end: int) -> Feature:
    kind, chunks = "none", []
    for field, wire, a, b in _fields(buf, start, end):
        if field not in (1, 2, 3):
            continue
        _expect(wire, 2, "Feature list")
        kind = {1: "bytes", 2: "float", 3: "int64"}[field]
        chunks = []  # oneof: the last one set wins
        for f2, w2, c, d in _fields(buf, a, b):
            if f2 != 1:
                continue
            if kind == "bytes":
                _expect(w2, 2, "BytesList value")
                chunks.append(bytes(buf[c:d]))
            elif kind == "float":
                if w2 == 2:
                    if (d - c) % 4:
                        raise ProtoError(f"packed floats of {d - c} bytes (not a multiple of 4)")
                    chunks.append(np.frombuffer(bytes(buf[c:d]), dtype="<f4"))
                else:
                    _expect(w2, 5, "FloatList value")
                    chunks.append(np.frombuffer(bytes(buf[c:d]), dtype="<f4"))
            else:
                if w2 == 2:
                    vals, p = [], c
                    while p < d:
                        v, p = _varint(buf, p, d)
                        vals.append(v)
                    chunks.append(vals)
                else:
                    _expect(w2, 0, "Int64List value")
                    chunks.append([c])
    if kind == "bytes":
        return Feature("bytes", chunks)
    if kind == "float":
        return Feature("float", np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32))
    if kind == "int64":
        flat = [v - (1 << 64) if v >= 1 << 63 else v for c in chunks for v in c]
        return Feature("int64", np.array(flat, dtype=np.int64))
    return Feature("none", [])


def _map(buf, start: int, end: int, value_parser) -> dict:
    out = {}
    for field, wire, a, b in _fields(buf, start, end):
        if field != 1:
            continue
        _expect(wire, 2, "map entry")
        key, val = "", None
        for f2, w2, c, d in _fields(buf, a, b):
            if f2 == 1:
                _expect(w2, 2, "map key")
                try:
                    key = bytes(buf[c:d]).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ProtoError("a feature name is not UTF-8") from exc
            elif f2 == 2:
                _expect(w2, 2, "map value")
                val = (c, d)
        out[key] = value_parser(buf, *val) if val is not None else value_parser(buf, 0, 0)
    return out


def _feature_list(buf, start: int, end: int) -> list[Feature]:
    out = []
    for field, wire, a, b in _fields(buf, start, end):
        if field == 1:
            _expect(wire, 2, "FeatureList entry")
            out.append(_feature(buf, a, b))
    return out


def parse_example(data: bytes) -> tuple[dict[str, Feature], dict[str, list[Feature]] | None]:
    """Decode a serialised ``tf.train.Example`` or ``tf.train.SequenceExample``.

    Returns
    -------
    features : dict
        The Example's features, or the SequenceExample's context.
    feature_lists : dict or None
        The SequenceExample's feature lists; None for an Example (no field 2).

    Raises
    ------
    ProtoError
        Bytes that are not such a message.
    """
    buf = memoryview(data)
    features: dict[str, Feature] = {}
    lists: dict[str, list[Feature]] | None = None
    for field, wire, a, b in _fields(buf, 0, len(buf)):
        if field == 1:
            _expect(wire, 2, "features")
            features.update(_map(buf, a, b, _feature))
        elif field == 2:
            _expect(wire, 2, "feature_lists")
            lists = lists if lists is not None else {}
            lists.update(_map(buf, a, b, _feature_list))
    return features, lists


# --- protobuf wire format: encoding ------------------------------------------------------------


def _enc_varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _enc_varint(field << 3 | 2) + _enc_varint(len(payload)) + payload


def bytes_feature(values: bytes | str | Sequence[bytes | str]) -> bytes:
    """A serialised ``Feature`` holding a ``BytesList``."""
    if isinstance(values, (bytes, str)):
        values = [values]
    items = b"".join(_ld(1, v.encode("utf-8") if isinstance(v, str) else bytes(v)) for v in values)
    return _ld(1, items)


def float_feature(values: Sequence[float] | np.ndarray) -> bytes:
    """A serialised ``Feature`` holding a packed ``FloatList``."""
    arr = np.asarray(values, dtype="<f4").ravel()
    return _ld(2, _ld(1, arr.tobytes()) if arr.size else b"")


def int64_feature(values: Sequence[int] | np.ndarray) -> bytes:
    """A serialised ``Feature`` holding a packed ``Int64List``."""
    vals = [int(v) for v in np.asarray(values).ravel()]
    return _ld(3, _ld(1, b"".join(_enc_varint(v) for v in vals)) if vals else b"")


def _features(features: Mapping[str, bytes]) -> bytes:
    return b"".join(_ld(1, _ld(1, k.encode("utf-8")) + _ld(2, v)) for k, v in features.items())


def encode_example(features: Mapping[str, bytes]) -> bytes:
    """Serialise a ``tf.train.Example``; *features* maps names to serialised Features."""
    return _ld(1, _features(features))


def encode_sequence_example(context: Mapping[str, bytes], feature_lists: Mapping[str, Sequence[bytes]]) -> bytes:
    """Serialise a ``tf.train.SequenceExample``.

    *context* maps names to serialised Features, *feature_lists* names to sequences of
    serialised Features (one per time step).
    """
    lists = b"".join(_ld(1, _ld(1, k.encode("utf-8")) + _ld(2, b"".join(_ld(1, f) for f in fl)))
                     for k, fl in feature_lists.items())
    return _ld(1, _features(context)) + _ld(2, lists)
