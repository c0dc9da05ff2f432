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
from vmtool.synth import corpus, embeddings, features, music, video
from vmtool.synth.corpus import *  # noqa: F401,F403
from vmtool.synth.embeddings import *  # noqa: F401,F403
from vmtool.synth.features import *  # noqa: F401,F403
from vmtool.synth.music import *  # noqa: F401,F403
from vmtool.synth.video import *  # noqa: F401,F403

__all__ = [*music.__all__, *video.__all__, "write_media", *corpus.__all__, *embeddings.__all__, *features.__all__]
