"""The whole chain on real (generated) media: extract -> segment -> train -> embed -> rank/align/evaluate.

A raw video file is ranked against the catalog: it must be processed exactly as the
catalog's items were, so its own track comes first with the same embeddings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.pipeline import Recipe, process_media
from vmtool.store import open_collection
from vmtool.synth import make_corpus


def run(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    clips = make_corpus(d / "clips", 8, duration=6.0, size=(48, 27), seed=5)
    feats = d / "feats.h5"
    run("extract", *[c.path for c in clips], "-a", "handcrafted", "-v", "color", "-o", feats, "-q")
    run("segment", feats, "-m", "fixed", "--window", "2", "-o", feats, "-q")
    model = d / "model.pt"
    run("train", feats, "-o", model, "--level", "segment", "--segments", "fixed", "--epochs", "3",
        "--audio-layers", "32,16", "--video-layers", "32,16", "-b", "16", "--val-fraction", "0.25", "-q")
    cat = d / "catalog.h5"
    run("embed", feats, "--model", model, "-o", cat, "-q")
    return d, [c.path for c in clips], cat


def test_raw_video_query_is_processed_like_the_catalog(pipeline):
    d, clips, cat = pipeline
    q = process_media(clips[2], Recipe.from_catalog(cat), device="cpu")
    with open_collection(cat) as c:
        i = c.index("clip_0002")
        np.testing.assert_allclose(q.segments["video"], c.ragged("embeddings", "video_segments").rows(i), atol=1e-5)
        np.testing.assert_allclose(q.spans, c.ragged("embeddings", "video_segments").companion("spans", i))


def test_rank_align_evaluate_from_the_cli(pipeline):
    d, clips, cat = pipeline
    r = run("rank", clips[2], cat, "-k", "3", "--format", "json", "-q")
    rows = json.loads(r.stdout)["results"]
    assert [x["rank"] for x in rows] == [1, 2, 3]
    assert {"id", "source", "distance", "start", "end"} <= set(rows[0])
    assert rows[0]["distance"] <= rows[1]["distance"] <= rows[2]["distance"]
    r = run("align", clips[2], f"{cat}#clip_0002", "--format", "json", "--plot", d / "align.png", "-q")
    a = json.loads(r.stdout)
    k = len(a["edits"])
    assert k == 3  # one edit per 2 s video segment of the 6 s clip
    assert [e["query_start"] for e in a["edits"]] == [0.0, 2.0, 4.0]
    matched = [e for e in a["edits"] if e["target_start"] is not None]  # a skipped segment has no target
    assert matched and all(0.0 <= e["target_start"] < e["target_end"] <= 6.0 + 1e-6 for e in matched)
    assert (d / "align.png").stat().st_size > 0
    r = run("evaluate", cat, "--method", "centroid,btrace,nw-dtw", "-q")
    assert "btrace" in r.stdout and "R@10" in r.stdout


def test_music_only_catalog_ranks_a_video(pipeline):
    """A catalog built from music alone (extract -v none) embeds its tracks with the
    model trained on music videos, and a raw video query still gets its video features."""
    d, clips, cat = pipeline
    music = d / "music.h5"
    run("extract", *clips[:5], "-a", "handcrafted", "-v", "none", "-o", music, "-q")
    run("segment", music, "-m", "fixed", "--window", "2", "-o", music, "-q")
    mcat = d / "music-catalog.h5"
    r = run("embed", music, "--model", d / "model.pt", "-o", mcat)
    assert "clip embeddings: audio 5" in r.stderr
    with open_collection(mcat) as m, open_collection(cat) as c:
        i, j = m.index("clip_0002"), c.index("clip_0002")
        np.testing.assert_allclose(m.ragged("embeddings", "audio_segments").rows(i),
                                   c.ragged("embeddings", "audio_segments").rows(j), atol=1e-5)
    r = run("rank", clips[2], mcat, "-k", "5", "--format", "json", "-q")
    assert len(json.loads(r.stdout)["results"]) == 5
    # and a video library alone (for m2v queries)
    vid = d / "video-only.h5"
    run("extract", clips[0], clips[1], "-a", "none", "-v", "color", "-o", vid, "-q")
    run("segment", vid, "-m", "fixed", "--window", "2", "-o", vid, "-q")
    r = run("embed", vid, "--model", d / "model.pt", "-o", d / "videos.h5")
    assert "clip embeddings: video 2" in r.stderr


@pytest.mark.parametrize("ext", ["mp3", "flac", "m4a", "ogg"])
def test_song_with_cover_art_queries_videos(pipeline, cover_art_files, ext):
    """A song from a music library (cover art embedded) is an audio-only m2v query."""
    d, clips, cat = pipeline
    r = run("rank", cover_art_files[ext], cat, "-d", "m2v", "-k", "3", "--format", "json", "-q")
    rows = json.loads(r.stdout)["results"]
    assert [x["rank"] for x in rows] == [1, 2, 3]
