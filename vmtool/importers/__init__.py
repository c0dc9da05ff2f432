"""Precomputed features into a vmtool collection (``vmtool import``).

Modules:

``arrays``
    NPY, NPZ, HDF5 and CSV arrays, clip-level or frame-level, into per-item rows.
``tfrecord``
    TFRecord framing (CRC-32C checked) and a minimal protobuf decoder/encoder for
    ``tf.train.Example`` / ``SequenceExample``, without TensorFlow.
``yt8m``
    YouTube-8M video-level and frame-level records (dequantisation as its readers).
``core``
    Joining audio and video on ids, and writing the collection atomically.

The written layout is documented in ``docs/import.md``.
"""

from vmtool.importers.core import (
    DEFAULT_NAMES,
    YT8M_NAMES,
    ArraySource,
    ImportReport,
    import_arrays,
    import_yt8m,
    item_sha256,
)

__all__ = ["ArraySource", "ImportReport", "import_arrays", "import_yt8m", "item_sha256", "DEFAULT_NAMES", "YT8M_NAMES"]
