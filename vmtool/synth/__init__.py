"""Synthetic data with known ground truth, for tests, benchmarks and the demo.

Nothing in the library imports this package at start-up: commands that process
real media never pay for it.

- :mod:`~vmtool.synth.music`: music with known tempo, beats, bars and sections.
- :mod:`~vmtool.synth.video`: visuals that follow such music (cuts on bar lines).
- :mod:`~vmtool.synth.corpus`: clips and corpora of music videos written to files
  (through the media layer's encoder, :func:`vmtool.media.encode.write_media`), with a
  manifest of their truth; the demo's corpus is one.
- :mod:`~vmtool.synth.embeddings`: segment embeddings and catalogs with a known answer
  (ranking's tests and benchmarks).
- :mod:`~vmtool.synth.features`: features collections with a learnable audio-video
  association (training's tests and benchmarks).

Everything is deterministic given a ``seed``, and every generator returns (or stores)
the truth it was built from, so an analysis can be checked against exact answers.

The public names of the modules are re-exported here (``from vmtool.synth import
make_corpus``).
"""

from vmtool.media.encode import write_media
from vmtool.synth.corpus import (EMOTIONS, LABELS_NAME, MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, ClipTruth,
                                 make_clip, make_corpus, read_manifest, real_music_video)
from vmtool.synth.embeddings import SynthConfig, synth_catalog, synth_chunks, synth_embeddings
from vmtool.synth.features import synth_features
from vmtool.synth.music import MusicTruth, synth_music
from vmtool.synth.video import bar_cuts, iter_video_frames, synth_video_frames

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
