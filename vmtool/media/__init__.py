"""The media layer: reading and writing audio and video files with PyAV.

- :mod:`~vmtool.media.decode`: probing, streamed decoding of audio (blocks) and
  video (frames), and finding media files below a directory.
- :mod:`~vmtool.media.encode`: writing audio, video or both (cover art included),
  atomically (tests, benchmarks and the demo's corpus).

Everything public is re-exported here, so ``from vmtool.media import probe`` works
and callers (and tests that patch ``vmtool.media.iter_frames``) go through this one
namespace. PyAV itself is imported only when a file is opened, and the encoder only
when ``write_media`` is first asked for: commands that only read media do not load it.
"""

from vmtool.media import decode as _decode
from vmtool.media.decode import *  # noqa: F401,F403 (the names in decode.__all__)

__all__ = [*_decode.__all__, "write_media"]


def __getattr__(name: str):
    if name == "write_media":
        from vmtool.media.encode import write_media

        return write_media
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
