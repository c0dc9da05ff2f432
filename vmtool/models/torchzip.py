"""Reading a model checkpoint without PyTorch: tensors as numpy arrays, nothing else.

``torch.save`` writes a zip archive: ``<prefix>/data.pkl`` (a pickle of the saved dict)
and one record ``<prefix>/data/<key>`` per tensor storage (raw little-endian bytes). A
vmtool model file (:mod:`vmtool.models.checkpoint`) holds only dicts, lists, strings,
numbers and tensors, so its pickle names three kinds of global: ``collections.OrderedDict``
(a state dict), ``torch._utils._rebuild_tensor_v2`` (a tensor view of a storage) and the
storage types (``torch.FloatStorage``...).

:func:`read_checkpoint` unpickles with exactly those globals, mapped to numpy (a tensor
becomes a C-contiguous copy of its view, bounds checked against its storage). Like
``torch.load(..., weights_only=True)``, it calls nothing else a file names; unlike it,
it needs no ``import torch`` (about 1 s of a one-file command's start-up,
docs/performance.md). Anything else (another global, a bfloat16 storage, a big-endian
archive, a damaged file) raises :class:`Unsupported`: the caller then reads the file
with ``torch.load``, whose errors are the ones vmtool reports for a bad model.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from typing import Any

import numpy as np

__all__ = ["Unsupported", "read_checkpoint"]


class Unsupported(Exception):
    """The archive holds something this reader does not read (use ``torch.load``)."""


#: torch's storage types -> the numpy type of their elements (little-endian)
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, requires_grad=False, hooks=None,
                    metadata=None) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2``: the view (*offset*, *size*, *stride*) of a storage, copied."""
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise Unsupported("a tensor view with a negative size, stride or offset")
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype)
    if not size:  # a 0-d tensor
        return np.array(storage[offset])
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= len(storage):
        raise Unsupported("a tensor view reaching past its storage")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=tuple(s * storage.itemsize for s in stride),
                                           writeable=False)
    return np.array(view, order="C")


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self._archive, self._prefix = archive, prefix
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise Unsupported(f"global {module}.{name}")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise Unsupported(f"persistent id {pid!r:.80}")
        kind, key = pid[1], str(pid[2])
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            if len(raw) % kind.dtype.itemsize:
                raise Unsupported(f"storage {key} is not a whole number of elements")
            self._storages[key] = np.frombuffer(raw, dtype=kind.dtype)
        arr = self._storages[key]
        if arr.dtype != kind.dtype:
            raise Unsupported(f"storage {key} read as two types")
        return arr


def read_checkpoint(source: bytes | str | os.PathLike) -> dict[str, Any]:
    """The object ``torch.save`` wrote, with tensors as numpy arrays (see the module's text).

    Parameters
    ----------
    source : bytes or path
        The archive's bytes, or its file.

    Raises
    ------
    Unsupported
        Not a zip checkpoint this reader reads: the caller falls back to ``torch.load``.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source))
        with archive:
            pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
            if len(pkl) != 1:
                raise Unsupported("no single data.pkl record")
            prefix = pkl[0][: -len("data.pkl")]
            names = set(archive.namelist())
            if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
                raise Unsupported("a big-endian archive")
            return _Unpickler(archive.read(pkl[0]), archive, prefix).load()
    except Unsupported:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged or foreign: torch.load says what is wrong
        raise Unsupported(f"{type(exc).__name__}: {exc}") from exc
