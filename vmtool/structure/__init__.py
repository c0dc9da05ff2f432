"""The music-video structure study: do shot cuts follow the beats, bars and sections?

Modules: :mod:`.scores` (``f_shot`` at 25 Hz, the co-occurrence window and scores,
their chance level, the shot-duration histogram, the synchronisation level),
:mod:`.metadata` (BPM, time signature and genres from a CSV such as the Harmonix
Set's ``metadata.csv``), :mod:`.clip` (the parameters and the analysis of one clip),
:mod:`.inputs` (media files and collections turned into one task per clip),
:mod:`.genres` (the aggregates per music and video genre), :mod:`.io` (the output
file: writing it, :func:`read_structure`), :mod:`.study` (the batch:
:func:`analyze_structure`) and :mod:`.plot`. ``docs/structure.md`` describes the study.

Importing this package imports numpy only; media decoding, msaf, librosa, torch and
matplotlib load when a computation needs them.
"""

from vmtool.structure.clip import ClipResult, StructureConfig, analyze_clip, clip_structure
from vmtool.structure.genres import GroupStats, aggregate
from vmtool.structure.io import read_structure
from vmtool.structure.metadata import parse_time_signature, read_metadata
from vmtool.structure.scores import (
    chance_level,
    cooccurrence,
    cooccurrence_score,
    histogram_mode,
    resample_likelihood,
    sync_level,
)
from vmtool.structure.study import StructureReport, analyze_structure

__all__ = [
    "ClipResult",
    "GroupStats",
    "StructureConfig",
    "StructureReport",
    "aggregate",
    "analyze_clip",
    "analyze_structure",
    "clip_structure",
    "read_structure",
    "parse_time_signature",
    "read_metadata",
    "chance_level",
    "cooccurrence",
    "cooccurrence_score",
    "histogram_mode",
    "resample_likelihood",
    "sync_level",
]
