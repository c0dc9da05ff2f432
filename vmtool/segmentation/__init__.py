"""Segmentation: music structure (MSAF), video shots (TransNetV2), beats, bars, windows.

Modules: :mod:`.base` (result type, boundary clean-up), :mod:`.music` (MSAF),
:mod:`.shots`, :mod:`.rhythm`, :mod:`.reference` (annotations, hit rates),
:mod:`.plot`, :mod:`.aggregate` (frame rows aggregated into segment-level rows).
Submodules are imported on demand: importing this package imports no heavy library.
"""

from vmtool.segmentation.base import Segmentation, clean_boundaries, segment_edges

__all__ = ["Segmentation", "clean_boundaries", "segment_edges"]
