"""Segmentation: music structure (MSAF), video shots (TransNetV2), beats, bars, windows.

Modules: :mod:`.registry` (every method declared once: name, modality, parameters,
runner), :mod:`.base` (result type, boundary clean-up), :mod:`.music` (MSAF),
:mod:`.shots`, :mod:`.rhythm`, :mod:`.reference` (annotations, hit rates),
:mod:`.plot`, :mod:`.aggregate` (frame rows aggregated into segment-level rows).
Submodules are imported on demand: importing this package imports nothing, not even
numpy (the CLI reads the registry's choices at start-up).
"""

__all__ = ["Segmentation", "clean_boundaries", "segment_edges"]


def __getattr__(name: str):
    if name in __all__:
        from vmtool.segmentation import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
