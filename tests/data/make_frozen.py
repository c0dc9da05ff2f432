"""Write the frozen example of a collection schema version (run once per schema version).

``python tests/data/make_frozen.py [1.0|1.1] [OUT]``. The files it writes are committed
and must keep reading with every later vmtool: ``tests/test_store.py::test_frozen_*``
check their exact content. Do not regenerate the file of a released version (the 1.0
file was written by vmtool 0.1.0, before 1.1 existed).
"""

import sys
from pathlib import Path

import numpy as np

from vmtool.store import CollectionWriter, Item, RaggedArray

version = sys.argv[1] if len(sys.argv) > 1 else "1.1"
out = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).with_name(f"collection-{version}.h5"))
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
    if version == "1.1":  # per-item labels and known negatives
        w.write_labels({"video_emotion": np.array(["happy", "sad"], dtype=object),
                        "music_emotion": np.array(["", "sad"], dtype=object),
                        "polarity": np.array([1.0, np.nan])}, attrs={"source": "labels.csv"})
        w.write_negatives([("sécond clip", "first")], attrs={"source": "negatives.csv"})
    else:
        w.set_attr("vmtool_schema", "1.0")
print(out)
