"""``vmtool.pipeline``: a catalog's recipe applied to raw media, in memory.

A catalog item processed again as a media query must give the embeddings the catalog
stores: the query goes through the same per-item functions (extract_item,
segment_item, the embedder) as the catalog's items did, without a temporary file.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.errors import VmtoolError
from vmtool.pipeline import MemoryItem, Recipe, process_media
from vmtool.store import open_collection, sha256_file
from vmtool.synth import make_corpus


def run(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def shots_catalog(tmp_path_factory):
    """Four 6-s clips: handcrafted audio, TransNetV2 + colour video features, shots
    segmentation (from the extracted shot likelihood), a segment-level model."""
    d = tmp_path_factory.mktemp("process-media")
    clips = [Path(c.path) for c in make_corpus(d / "clips", 4, duration=6.0, size=(48, 27), seed=3)]
    feats = d / "feats.h5"
    run("extract", *clips, "-a", "handcrafted", "-v", "transnet,color", "-o", feats, "-q")
    run("segment", feats, "-m", "transnet", "--threshold", "0.3", "-o", feats, "-q")
    model = d / "model.pt"
    run("train", feats, "-o", model, "--level", "segment", "--segments", "transnet", "--epochs", "2",
        "--audio-layers", "16", "--video-layers", "16", "-b", "8", "--val-fraction", "0.25", "-q")
    cat = d / "catalog.h5"
    run("embed", feats, "--model", model, "-o", cat, "-q")
    return clips, cat, model


def test_a_catalog_item_processed_as_media_gives_its_stored_embeddings(shots_catalog, monkeypatch):
    """Two clips with one recipe: the embeddings the catalog stores, and the extractors
    and the model built once."""
    import vmtool.embed
    import vmtool.extract

    clips, cat, _ = shots_catalog
    calls = {"extractors": 0, "model": 0}
    build, load = vmtool.extract.build_extractors, vmtool.embed.load_catalog_model

    def counting(name, f):
        def g(*a, **k):
            calls[name] += 1
            return f(*a, **k)
        return g

    monkeypatch.setattr(vmtool.extract, "build_extractors", counting("extractors", build))
    monkeypatch.setattr(vmtool.embed, "load_catalog_model", counting("model", load))
    recipe = Recipe.from_catalog(cat)
    with open_collection(cat) as c:
        for clip in clips[:2]:
            q = process_media(clip, recipe, device="cpu")
            i = c.index(clip.stem)
            for mod in ("audio", "video"):
                segs = c.ragged("embeddings", f"{mod}_segments")
                np.testing.assert_allclose(q.segments[mod], segs.rows(i), rtol=0, atol=1e-6)
                np.testing.assert_allclose(q.clip[mod], c.ragged("embeddings", mod).rows(i)[0], rtol=0, atol=1e-6)
                np.testing.assert_array_equal(q.spans, segs.companion("spans", i))
            assert q.duration == pytest.approx(float(c.column("duration")[i]))
            assert q.sha256 == c.sha256s[i] == sha256_file(clip)
            assert q.source == str(clip)
    assert calls == {"extractors": 1, "model": 1}


def test_the_recipe_names_what_the_catalog_holds(shots_catalog):
    clips, cat, model = shots_catalog
    recipe = Recipe.from_catalog(cat)
    with open_collection(cat) as c:
        stored = c.config
    assert recipe.catalog == cat
    assert set(recipe.extract.audio_features) == {"handcrafted"}
    assert set(recipe.extract.video_features) == {"transnet", "color"}
    assert recipe.extract.rate == stored["rate"] == 1.0
    assert recipe.extractors == {**stored["audio"], **stored["video"]}
    assert recipe.weights == {}  # none of these extractors records a weight file's digest
    assert recipe.segmentation == "transnet"
    assert recipe.segmentation_config["threshold"] == 0.3
    cfg = recipe.segment_config()
    assert list(cfg.methods) == ["transnet"] and cfg.threshold == 0.3
    assert recipe.segment_config("fixed").threshold == 0.5  # another method gets its defaults
    assert recipe.model_sha256 == sha256_file(model)
    assert recipe.model("cpu").sha256 == recipe.model_sha256


def test_nothing_is_written_to_disk(shots_catalog, tmp_path, monkeypatch):
    import vmtool.store

    clips, cat, _ = shots_catalog
    empty = tmp_path / "tmp"
    empty.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(empty))
    monkeypatch.setenv("TMPDIR", str(empty))

    def no_writer(*a, **k):
        raise AssertionError("process_media wrote a collection")

    monkeypatch.setattr(vmtool.store.CollectionWriter, "__init__", no_writer)
    q = process_media(clips[2], Recipe.from_catalog(cat), device="cpu")
    assert q.segments["video"].shape[0] >= 1
    assert list(empty.iterdir()) == []


def test_memory_item_reads_like_the_collection(shots_catalog):
    """The in-memory item offers the rows a collection file returns (float32 features)."""
    from vmtool.extract import build_extractors, extract_item, stored_config

    clips, cat, _ = shots_catalog
    recipe = Recipe.from_catalog(cat)
    ex = build_extractors(recipe.extract, "cpu")
    item = MemoryItem(extract_item(clips[1], ex, recipe.extract), ex, stored_config(recipe.extract, ex))
    feats = cat.parent / "feats.h5"
    with open_collection(feats) as c:
        i = c.index(clips[1].stem)
        assert item.names("features") == c.names("features")
        for name in c.names("features"):
            f, g = item.feature(name), c.feature(name)
            assert f.modality == g.modality and f.dim == g.dim and f.rate(0) == g.rate(i)
            assert f.rows(0).dtype == g.rows(i).dtype == np.float32
            np.testing.assert_array_equal(f.rows(0), g.rows(i))
        assert json.dumps(item.config, sort_keys=True) == json.dumps(c.config, sort_keys=True)


def test_a_failed_segmentation_names_the_way_out(shots_catalog, video_only):
    """A music method on a video without sound fails with the hint vmtool rank has always given."""
    clips, cat, _ = shots_catalog
    with pytest.raises(VmtoolError) as err:
        process_media(video_only, Recipe.from_catalog(cat), device="cpu", segments="beats")
    assert str(err.value) == (f"{video_only}: has no audio stream, needed by beats (segmenting the query with "
                              "'beats'; a video without sound needs --query-segments transnet)")


def test_the_ranker_ranks_a_media_file_as_its_stored_item(shots_catalog):
    """vmtool rank's flow in the library: a catalog item given as media ranks the catalog
    exactly as the item itself (same ids, same distances)."""
    from vmtool.query import CatalogRanker, align_pair

    clips, cat, _ = shots_catalog
    ranker = CatalogRanker(cat, method="nw-dtw", k=4, device="cpu")
    media = ranker.rank(str(clips[3]))
    stored = ranker.rank(f"{cat}#{clips[3].stem}")
    assert [r.id for r in media.ranking.results] == [r.id for r in stored.ranking.results]
    np.testing.assert_allclose([r.distance for r in media.ranking.results],
                               [r.distance for r in stored.ranking.results], rtol=0, atol=1e-5)
    assert media.item.sha256s == stored.item.sha256s and len(media.sections) == 4
    pair = align_pair(f"{cat}#{clips[3].stem}", f"{cat}#{clips[3].stem}", device="cpu")
    d = pair.to_dict()
    assert d["query"] == d["target"] == f"{cat}#{clips[3].stem}" and d["direction"] == "v2m"
    assert len(d["edits"]) == len(stored.item.segments(0))


def test_transnet_reuses_the_extracted_shot_likelihood(shots_catalog, monkeypatch):
    """As vmtool segment on a collection, the query's shots come from the likelihood that
    extraction computed: TransNetV2 does not run a second time on the media."""
    from vmtool.segmentation import shots

    def second_pass(*a, **k):
        raise AssertionError("TransNetV2 ran again on the media")

    monkeypatch.setattr(shots, "shots_from_media", second_pass)
    clips, cat, _ = shots_catalog
    q = process_media(clips[0], Recipe.from_catalog(cat), device="cpu")
    assert len(q.spans) == len(q.segments["video"]) >= 1


def test_query_segments_take_parameters(shots_catalog):
    """--query-segments METHOD:KEY=VALUE: fixed windows need their length, and a stored
    method's parameters can be changed; a key the method does not take is a usage error."""
    clips, cat, _ = shots_catalog
    recipe = Recipe.from_catalog(cat)
    q = process_media(clips[0], recipe, device="cpu", segments="fixed:window=2")
    np.testing.assert_allclose(q.spans[:, 1] - q.spans[:, 0], 2.0)
    assert len(q.segments["audio"]) == 3
    assert recipe.segment_config("transnet:threshold=0.6").params("transnet")["threshold"] == 0.6
    assert recipe.segment_config("transnet").params("transnet")["threshold"] == 0.3  # the catalog's
    r = CliRunner().invoke(app, ["rank", str(clips[0]), str(cat), "--query-segments", "fixed:windw=2"])
    assert r.exit_code == 2
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", r.output).split())  # the usage box, unwrapped
    assert "'fixed:windw=2': fixed takes no parameter 'windw'; it takes window, min_duration" in flat
    r = CliRunner().invoke(app, ["rank", str(clips[0]), str(cat), "--query-segments", "fixed:window=2",
                                 "--format", "tsv"])
    assert r.exit_code == 0, r.output
    assert sorted(line.split("\t")[1] for line in r.stdout.splitlines()[1:]) == sorted(c.stem for c in clips)
