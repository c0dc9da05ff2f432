"""YouTube-8M TFRecord shards: the papers' training data, read without TensorFlow.

Two layouts exist (https://research.google.com/youtube8m/download.html):

video-level, one ``tf.train.Example`` per video
    ``id`` (bytes; ``video_id`` in the 2017 release), ``labels`` (int64 list),
    ``mean_rgb`` (1024 floats), ``mean_audio`` (128 floats) -- used as they are.
frame-level, one ``tf.train.SequenceExample`` per video
    context ``id`` and ``labels``; feature lists ``rgb`` (per second, one bytes value
    of 1024 uint8) and ``audio`` (per second, 128 uint8), quantised to [-2, 2].

Frame features are dequantised exactly as YouTube-8M's readers do
(``utils.Dequantize``): ``q * (max - min) / 255 + (max - min) / 512 + min`` with
``min = -2``, ``max = 2``, in float32. Frame-level features are at 1 Hz.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vmtool.errors import FormatError, ParameterError, VmtoolError
from vmtool.importers.tfrecord import (
    Feature,
    ProtoError,
    bytes_feature,
    encode_example,
    encode_sequence_example,
    float_feature,
    int64_feature,
    parse_example,
    read_tfrecord,
)

__all__ = [
    "MIN_QUANTIZED",
    "MAX_QUANTIZED",
    "FRAME_RATE",
    "Yt8mRecord",
    "dequantize",
    "quantize",
    "decode_record",
    "expand_shards",
    "read_yt8m",
    "video_level_example",
    "frame_level_example",
]

MIN_QUANTIZED = -2.0
MAX_QUANTIZED = 2.0
FRAME_RATE = 1.0  # frame-level features: one row per second
ID_KEYS = ("id", "video_id")
VIDEO_LEVEL = {"video": "mean_rgb", "audio": "mean_audio"}
FRAME_LEVEL = {"video": "rgb", "audio": "audio"}


def dequantize(q: np.ndarray, *, min_value: float = MIN_QUANTIZED, max_value: float = MAX_QUANTIZED) -> np.ndarray:
    """uint8 codes -> float32 features, as YouTube-8M's ``utils.Dequantize``.

    ``q * scalar + bias`` with ``scalar = (max - min) / 255`` and
    ``bias = (max - min) / 512 + min``, both rounded to float32 first (TensorFlow
    multiplies a float32 tensor by Python floats).
    """
    rng = max_value - min_value
    scalar = np.float32(rng / 255.0)
    bias = np.float32(rng / 512.0 + min_value)
    return np.asarray(q, dtype=np.float32) * scalar + bias


def quantize(x: np.ndarray, *, min_value: float = MIN_QUANTIZED, max_value: float = MAX_QUANTIZED) -> np.ndarray:
    """float features -> uint8 codes, as YouTube-8M's feature extractor (``quantize``)."""
    x = np.clip(np.asarray(x, dtype=np.float32), min_value, max_value)
    return np.rint((x - min_value) * (255.0 / (max_value - min_value))).astype(np.uint8)


@dataclass
class Yt8mRecord:
    """One video of a YouTube-8M shard.

    ``video`` (rgb) and ``audio`` are float32 ``(rows, dim)``: one row for video-level
    records (zero when the feature is absent), one row per second for frame-level ones.
    """

    id: str
    labels: np.ndarray
    level: str  # "video" or "frame"
    video: np.ndarray
    audio: np.ndarray


def _describe(f: Feature) -> str:
    return {"bytes": "a bytes list", "float": "a float list", "int64": "an int64 list", "none": "empty"}[f.kind]


def decode_record(data: bytes) -> Yt8mRecord:
    """Decode one serialised YouTube-8M Example (video-level) or SequenceExample (frame-level).

    Raises
    ------
    ProtoError
        Not a protobuf message of that shape.
    """
    features, lists = parse_example(data)
    vid = next((features[k] for k in ID_KEYS if k in features), None)
    if vid is None or vid.kind != "bytes" or len(vid) != 1:
        have = ", ".join(sorted(features)) or "none"
        raise ProtoError(f"no 'id' bytes feature, so not a YouTube-8M record (features: {have})")
    try:
        item_id = vid.value[0].decode("utf-8")  # type: ignore[index]
    except UnicodeDecodeError as exc:
        raise ProtoError("the 'id' is not UTF-8") from exc
    lab = features.get("labels")
    if lab is not None and lab.kind not in ("int64", "none"):
        raise ProtoError(f"'labels' is {_describe(lab)}, expected int64")
    labels = np.asarray(lab.value if lab is not None and lab.kind == "int64" else [], dtype=np.int64)
    out = {}
    if lists is None:
        if not any(k in features for k in VIDEO_LEVEL.values()):
            raise ProtoError(f"video {item_id!r} has neither 'mean_rgb' nor 'mean_audio' "
                             f"(features: {', '.join(sorted(features))})")
        for modality, key in VIDEO_LEVEL.items():
            f = features.get(key)
            if f is None or f.kind == "none" or len(f) == 0:
                out[modality] = None
                continue
            if f.kind != "float":
                raise ProtoError(f"'{key}' of video {item_id!r} is {_describe(f)}, expected floats")
            out[modality] = np.asarray(f.value, dtype=np.float32)[None, :]
        level = "video"
    else:
        if not any(k in lists for k in FRAME_LEVEL.values()):
            raise ProtoError(f"video {item_id!r} has neither an 'rgb' nor an 'audio' feature list "
                             f"(lists: {', '.join(sorted(lists)) or 'none'})")
        for modality, key in FRAME_LEVEL.items():
            frames = lists.get(key) or []
            codes = []
            for j, f in enumerate(frames):
                if f.kind != "bytes" or len(f) != 1:
                    raise ProtoError(f"frame {j} of '{key}' of video {item_id!r} is {_describe(f)} of "
                                     f"{len(f)} value(s), expected one bytes value")
                codes.append(f.value[0])  # type: ignore[index]
                if len(codes[-1]) != len(codes[0]):
                    raise ProtoError(f"frame {j} of '{key}' of video {item_id!r} has {len(codes[-1])} bytes, "
                                     f"frame 0 has {len(codes[0])}")
            if not codes or not len(codes[0]):
                out[modality] = None
                continue
            q = np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(len(codes), len(codes[0]))
            out[modality] = dequantize(q)
        level = "frame"
    return Yt8mRecord(id=item_id, labels=labels, level=level, video=out["video"], audio=out["audio"])


def expand_shards(patterns: Sequence[str | os.PathLike]) -> list[Path]:
    """Paths of the shards named by *patterns* (paths or glob patterns), in order, once each.

    A pattern's matches are sorted.

    Raises
    ------
    ParameterError
        A glob pattern that matches nothing.
    VmtoolError
        A path that does not exist.
    """
    out: list[Path] = []
    seen: set[str] = set()
    for pat in patterns:
        s = os.fspath(pat)
        if any(c in s for c in "*?[") and not os.path.exists(s):
            matches = sorted(glob.glob(s))
            if not matches:
                raise ParameterError(f"no file matches the pattern {s!r}")
        else:
            if not os.path.exists(s):
                raise VmtoolError("no such file", s)
            matches = [s]
        for m in matches:
            key = os.path.normpath(os.path.abspath(m))
            if key not in seen and not os.path.isdir(m):
                seen.add(key)
                out.append(Path(m))
    if not out:
        raise ParameterError("no YouTube-8M shard given")
    return out


def read_yt8m(path: str | os.PathLike) -> Iterator[tuple[int, Yt8mRecord]]:
    """Yield ``(record index, record)`` for every video of one shard.

    Raises
    ------
    FormatError
        A damaged TFRecord (CRC, truncation) or a record that is not a YouTube-8M video.
    """
    for i, data in enumerate(read_tfrecord(path)):
        try:
            yield i, decode_record(data)
        except ProtoError as exc:
            raise FormatError(f"record {i}: {exc}", path) from None


# --- writing (test files, fixtures) ------------------------------------------------------------


def video_level_example(item_id: str, labels: Sequence[int], mean_rgb: np.ndarray | None,
                        mean_audio: np.ndarray | None) -> bytes:
    """A serialised video-level Example (floats stored as they are; None: feature absent)."""
    feats = {"id": bytes_feature(item_id), "labels": int64_feature(labels)}
    if mean_rgb is not None:
        feats["mean_rgb"] = float_feature(mean_rgb)
    if mean_audio is not None:
        feats["mean_audio"] = float_feature(mean_audio)
    return encode_example(feats)


def frame_level_example(item_id: str, labels: Sequence[int], rgb: np.ndarray | None,
                        audio: np.ndarray | None) -> bytes:
    """A serialised frame-level SequenceExample from uint8 codes ``(seconds, dim)`` per modality."""
    lists = {}
    for key, codes in (("rgb", rgb), ("audio", audio)):
        if codes is not None:
            q = np.asarray(codes)
            if q.dtype != np.uint8:
                raise ParameterError(f"{key}: frame-level codes must be uint8, got {q.dtype} (see quantize())")
            lists[key] = [bytes_feature(row.tobytes()) for row in q]
    return encode_sequence_example({"id": bytes_feature(item_id), "labels": int64_feature(labels)}, lists)
