"""Synthetic data with known ground truth, for tests, benchmarks and the demo.

Nothing in the library imports this package at start-up: commands that process
real media never pay for it.

- :mod:`~vmtool.synth.music`: music with known tempo, beats, bars and sections.
- :mod:`~vmtool.synth.embeddings`: segment embeddings and catalogs with a known answer
  (ranking's tests and benchmarks).
- :mod:`~vmtool.synth.features`: features collections with a learnable audio-video
  association (training's tests and benchmarks).

The public names of the modules are re-exported here (``from vmtool.synth import
make_corpus``).
"""

from vmtool.synth.embeddings import SynthConfig, synth_catalog, synth_chunks, synth_embeddings
from vmtool.synth.features import synth_features
from vmtool.synth.music import (EMOTIONS, LABELS_NAME, MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, ClipTruth,
                                MusicTruth, bar_cuts, iter_video_frames, make_clip, make_corpus, read_manifest,
                                real_music_video, synth_music, synth_video_frames, write_media)

__all__ = [
    "MusicTruth",
    "ClipTruth",
    "synth_music",
    "bar_cuts",
    "iter_video_frames",
    "synth_video_frames",
    "write_media",
    "make_clip",
    "make_corpus",
    "read_manifest",
    "real_music_video",
    "EMOTIONS",
    "LABELS_NAME",
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "SynthConfig",
    "synth_chunks",
    "synth_embeddings",
    "synth_catalog",
    "synth_features",
]
