"""Structure-aware ranking: distances between sequences of segment embeddings.

Seg-VM-Net (Prétet, Richard, Souchier and Peeters) ranks music tracks for a video by
comparing the sequence of the video's segment embeddings with each track's. This
package holds the distances (:mod:`~vmtool.ranking.methods`), computed for a whole
catalog at once in bounded memory (:mod:`~vmtool.ranking.batched`), the alignment
of one pair with its edit list (:mod:`~vmtool.ranking.align`), ranking a catalog
for one query (:mod:`~vmtool.ranking.rank`), the papers' evaluation protocol
(:mod:`~vmtool.ranking.evaluate`) and catalog reading (:mod:`~vmtool.ranking.catalog`).
Synthetic catalogs for its tests and benchmarks are in :mod:`vmtool.synth.embeddings`.

Only numpy is needed to import it; numba compiles the kernels on first use, and torch
is imported only for a non-CPU device. Definitions: ``docs/methods-ranking.md``.

Examples
--------
>>> from vmtool.ranking import distances
>>> from vmtool.synth import synth_embeddings
>>> sets = synth_embeddings(50, dim=32, seed=0)
>>> d = distances(sets["video"], sets["audio"], "nw-dtw")
>>> d.shape
(50, 50)
"""

from vmtool.ranking.align import Alignment, Edit, align
from vmtool.ranking.catalog import load_catalog, load_item, parse_item_ref, sides
from vmtool.ranking.batched import distance_matrices, distances
from vmtool.ranking.evaluate import Evaluation, evaluate, evaluate_sets, ground_truth_ranks, rank_metrics
from vmtool.ranking.methods import (ALIGNMENT_METHODS, DEFAULT_INDEL, DEFAULT_METHOD, METHODS, PAPER_METHODS,
                                    VMTOOL_METHODS, Method, parse_method, parse_methods)
from vmtool.ranking.rank import Ranking, rank
from vmtool.ranking.segments import SCENARIOS, SegmentSet, crop_queries, stretch_targets

__all__ = [
    "ALIGNMENT_METHODS", "DEFAULT_INDEL", "DEFAULT_METHOD", "METHODS", "PAPER_METHODS", "SCENARIOS", "VMTOOL_METHODS",
    "Alignment", "Edit", "Evaluation", "Method", "Ranking", "SegmentSet",
    "align", "crop_queries", "distance_matrices", "distances", "evaluate", "evaluate_sets", "ground_truth_ranks",
    "load_catalog", "load_item", "parse_item_ref", "parse_method", "parse_methods", "rank", "rank_metrics",
    "sides", "stretch_targets",
]
