"""Write the frozen example of collection schema 1.0 (run once per schema version).

The file it writes is committed and must keep reading with every later vmtool:
``tests/test_store.py::test_frozen_1_0_still_reads`` checks its exact content.
Do not regenerate it for a released version.
"""

import sys
from pathlib import Path

import numpy as np

from vmtool.store import CollectionWriter, Item, RaggedArray

out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("collection-1.0.h5"))
config = {"config_version": 1, "rate": 1.0, "audio": {"toy": {"name": "toy", "version": "1"}}, "video": {}}
with CollectionWriter(out, config=config, command="make_frozen.py") as w:
    w.declare("features", "toy", dim=3, attrs={"modality": "audio", "extractor": "toy", "version": "1",
                                               "columns": ["a", "b", "c"]})
    w.declare("curves", "likelihood", dim=None, attrs={"modality": "video", "extractor": "toy"})
    w.add(Item("first", "media/first.wav", "0" * 64, 2.5, True, False, float("nan"), 22050),
          {("features", "toy"): RaggedArray(np.arange(9, dtype=np.float32).reshape(3, 3), 1.0)})
    w.add(Item("sécond clip", "media/sécond clip.mp4", "f" * 64, 1.0, True, True, 25.0, 44100),
          {("features", "toy"): RaggedArray(np.full((1, 3), -1, np.float32), 1.0),
           ("curves", "likelihood"): RaggedArray(np.linspace(0, 1, 25, dtype=np.float32), 25.0)})
print(out)
