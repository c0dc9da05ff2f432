"""vmtool: recommend music for a video (and videos for music) by content and structure.

The package is a library: it never prints or exits. The command line lives in
:mod:`vmtool.cli`. Heavy dependencies (torch, librosa, msaf) are imported lazily by
the modules that need them, so ``import vmtool`` is cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
