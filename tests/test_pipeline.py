"""The whole chain on real (generated) media: extract -> segment -> train -> embed -> rank/align/evaluate.

A raw video file is ranked against the catalog: it must be processed exactly as the
catalog's items were, so its own track comes first with the same embeddings.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.errors import VmtoolError
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


# --- a music segmentation beside the extraction (a forked child extracts) --------------------


@pytest.fixture
def overlap(monkeypatch):
    """Set whether process_media segments in a forked child (True) or in this process (False).

    The test process has torch loaded (training), where process_media never forks; the child
    here segments with msaf, which does not touch torch."""
    import vmtool.pipeline as pipeline_mod

    def set_overlap(on: bool) -> None:
        monkeypatch.setattr(pipeline_mod, "_overlap", lambda method, device: on)

    yield set_overlap
    pipeline_mod.close_segmenter()  # the process kept for later queries


def test_music_segments_beside_the_extraction_are_the_serial_ones(pipeline, music_video, overlap):
    """The same embeddings, spans and hash whether the segmentation runs in a forked child or
    not; the child is kept and segments the next query too."""
    import multiprocessing

    import vmtool.pipeline as pipeline_mod

    _, _, cat = pipeline
    got = {}
    for on in (False, True):
        overlap(on)
        recipe = Recipe.from_catalog(cat)
        got[on] = process_media(music_video, recipe, device="cpu", segments="olda")
        if not on:
            assert multiprocessing.active_children() == []
            continue
        worker = pipeline_mod._SEGMENTER[0]
        assert worker.alive and multiprocessing.active_children() == [worker._proc]
        again = process_media(music_video, recipe, device="cpu", segments="olda")
        assert pipeline_mod._SEGMENTER[0] is worker  # no second fork
        np.testing.assert_array_equal(again.spans, got[on].spans)
    serial, forked = got[False], got[True]
    assert len(serial.spans) > 1  # a real segmentation, not the whole clip
    np.testing.assert_array_equal(forked.spans, serial.spans)
    for m in serial.clip:
        np.testing.assert_array_equal(forked.clip[m], serial.clip[m])
        np.testing.assert_array_equal(forked.segments[m], serial.segments[m])
    assert (forked.duration, forked.sha256) == (serial.duration, serial.sha256)


def test_an_extraction_error_beside_the_segmentation_names_the_file_and_reason(pipeline, music_video, overlap, monkeypatch):
    import multiprocessing

    import vmtool.extract
    from vmtool.errors import MediaError

    _, _, cat = pipeline
    overlap(True)

    def broken(src, *args, **kwargs):
        raise MediaError("cannot decode the audio stream", src)

    monkeypatch.setattr(vmtool.extract, "extract_item", broken)  # this process extracts; the child segments
    with pytest.raises(MediaError) as err:
        process_media(music_video, Recipe.from_catalog(cat), device="cpu", segments="olda")
    assert str(err.value) == f"{music_video}: cannot decode the audio stream"
    assert (err.value.path, err.value.reason) == (str(music_video), "cannot decode the audio stream")
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("forked", [False, True])
def test_a_bad_file_is_reported_before_a_bad_model_either_way(pipeline, tmp_path, overlap, monkeypatch, forked):
    """Forked or not (which the machine's load decides), the same error for the same input."""
    from vmtool.errors import MediaError

    _, _, cat = pipeline
    overlap(forked)
    recipe = Recipe.from_catalog(cat)

    def no_model(device):
        raise VmtoolError("the model cannot be read", cat)

    monkeypatch.setattr(recipe, "model", no_model)
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"not a media file")
    with pytest.raises(MediaError) as err:
        process_media(bad, recipe, device="cpu", segments="olda")
    assert str(err.value).startswith(f"{bad}: ")


def test_a_child_that_dies_is_reported(pipeline, music_video, overlap, monkeypatch):
    import os

    import vmtool.segment
    from vmtool.errors import VmtoolError

    _, _, cat = pipeline
    overlap(True)
    monkeypatch.setattr(vmtool.segment, "segment_item", lambda *a, **k: os._exit(7))  # the forked child inherits it
    with pytest.raises(VmtoolError) as err:
        process_media(music_video, Recipe.from_catalog(cat), device="cpu", segments="olda")
    assert str(err.value) == f"{music_video}: the segmentation process ended without a result (exit code 7)"


def test_the_forked_segmentation_error_keeps_its_hint(pipeline, video_only, overlap):
    from vmtool.errors import VmtoolError

    _, _, cat = pipeline
    overlap(True)
    with pytest.raises(VmtoolError) as err:
        process_media(video_only, Recipe.from_catalog(cat), device="cpu", segments="olda")
    assert str(err.value) == (f"{video_only}: has no audio stream, needed by olda (segmenting the query with "
                              "'olda'; a video without sound needs --query-segments transnet)")


def test_an_interrupted_query_leaves_no_child(pipeline, music_video, overlap, monkeypatch):
    """Ctrl-C while this process extracts: the child segmenting is stopped, not left behind."""
    import multiprocessing

    import vmtool.pipeline as pipeline_mod

    _, _, cat = pipeline
    overlap(True)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_mod, "_extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        process_media(music_video, Recipe.from_catalog(cat), device="cpu", segments="olda")
    assert multiprocessing.active_children() == []


def test_which_queries_segment_in_a_forked_child(monkeypatch):
    """Only a method that reads the media and nothing extraction computes, on the CPU, with
    torch not loaded, on Linux with two cores or more, not all of them busy; or wherever the
    process forked for an earlier query is still there."""
    import os
    import sys

    import vmtool.pipeline as pipeline_mod
    from vmtool.pipeline import _overlap

    monkeypatch.setattr(pipeline_mod, "_SEGMENTER", [None])
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert _overlap("olda", "cpu") and _overlap("beats", "cpu")
    assert not _overlap("transnet", "cpu")  # reads the shot likelihood extraction computes
    assert not _overlap("fixed", "cpu")  # reads no media
    assert not _overlap("olda", "cuda:0")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert not _overlap("olda", "cpu")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 1.0, 1.0))  # both cores busy
    assert not _overlap("olda", "cpu")
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    monkeypatch.setitem(sys.modules, "torch", object())
    assert not _overlap("olda", "cpu")
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert not _overlap("olda", "cpu")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 1.0, 1.0))  # busy, but a segmenter is there already

    from vmtool.segmentation import registry

    class Alive:
        alive = True
        methods = {"olda": registry.get("olda")}  # the registry as it was when the child was forked

    pipeline_mod._SEGMENTER[0] = Alive()
    assert _overlap("olda", "cpu") and not _overlap("transnet", "cpu") and not _overlap("olda", "cuda:0")
    assert not _overlap("beats", "cpu")  # registered (or replaced) after the fork: segmented here


def _prepared() -> str | None:
    """(Run in the forked child) what the test method's prepare recorded there."""
    import os

    return os.environ.get("VMTOOL_TEST_PREPARED")


@contextlib.contextmanager
def _started_ahead(cat, prepare, overlap):
    """olda with *prepare* in place of its own, and its segmentation process started ahead
    for *cat*'s recipe: yields the recipe and the process (olda restored afterwards)."""
    import dataclasses

    import vmtool.pipeline as pipeline_mod
    from vmtool.segmentation import registry

    olda = registry.get("olda")
    registry.register(dataclasses.replace(olda, prepare=prepare), replace=True)
    try:
        overlap(True)
        recipe = Recipe.from_catalog(cat)
        assert pipeline_mod.start_segmenter(recipe, device="cpu", segments="olda")
        yield recipe, pipeline_mod._SEGMENTER[0]
    finally:
        registry.register(olda, replace=True)


@contextlib.contextmanager
def _started_with(cat, prepare, overlap, monkeypatch):
    """:func:`_started_ahead`, also yielding what *prepare* recorded in the child."""
    monkeypatch.delenv("VMTOOL_TEST_PREPARED", raising=False)
    with _started_ahead(cat, prepare, overlap) as (recipe, worker):
        worker.submit(_prepared)
        yield recipe, worker, worker.result()  # answered in order: after the prepare, before any query


def test_a_segmenter_started_ahead_prepares_its_method_then_segments_the_query(pipeline, music_video, overlap,
                                                                               monkeypatch):
    """start_segmenter forks before any query and the child runs the method's prepare first;
    the query then goes to that child (no second fork) and gets the serial segmentation."""
    import multiprocessing
    import os

    import vmtool.pipeline as pipeline_mod
    from vmtool.segmentation import registry

    _, _, cat = pipeline
    own = registry.get("olda").prepare

    def prepare(params):  # runs in the child only: this process's environment is untouched
        os.environ["VMTOOL_TEST_PREPARED"] = f"{params['method']} {params['labels']}"
        own(params)

    with _started_with(cat, prepare, overlap, monkeypatch) as (recipe, worker, recorded):
        assert recorded == "olda None" and "VMTOOL_TEST_PREPARED" not in os.environ
        assert pipeline_mod.start_segmenter(recipe, device="cpu", segments="olda")  # running: no second fork
        ahead = process_media(music_video, recipe, device="cpu", segments="olda")
        assert pipeline_mod._SEGMENTER[0] is worker and multiprocessing.active_children() == [worker._proc]
    overlap(False)
    serial = process_media(music_video, recipe, device="cpu", segments="olda")
    assert len(serial.spans) > 1
    np.testing.assert_array_equal(ahead.spans, serial.spans)
    for m in serial.clip:
        np.testing.assert_array_equal(ahead.segments[m], serial.segments[m])


def test_a_prepare_that_fails_leaves_the_segmentation_to_report(pipeline, music_video, overlap, monkeypatch):
    _, _, cat = pipeline

    def broken(params):  # runs in the child: it records that it ran, then fails
        import os

        os.environ["VMTOOL_TEST_PREPARED"] = "failed"
        raise RuntimeError("no such library")

    with _started_with(cat, broken, overlap, monkeypatch) as (recipe, worker, recorded):
        assert recorded == "failed"  # it ran and failed; the child still answers
        q = process_media(music_video, recipe, device="cpu", segments="olda")  # and segments
    assert len(q.spans) > 1


def test_start_segmenter_starts_nothing_it_would_not_use(pipeline, overlap, tmp_path):
    """No process for a method run here, for a --query-segments that does not parse (the
    query reports it), or for queries that are all stored items; never an error."""
    import multiprocessing

    from vmtool.pipeline import start_segmenter
    from vmtool.query import QueryLoader

    _, clips, cat = pipeline
    recipe = Recipe.from_catalog(cat)
    overlap(False)
    assert not start_segmenter(recipe, device="cpu", segments="olda")
    overlap(True)
    assert not start_segmenter(recipe, device="cpu", segments="olda:nonsense=1")
    assert not start_segmenter(recipe, device="cpu", segments="no-such-method")
    loader = QueryLoader(cat, device="cpu", segments="olda")
    assert not loader.start([f"{cat}#clip_0001", f"{cat}#clip_0002"])
    no_model = tmp_path / "features.h5"  # a collection without a model: its query will say so
    run("extract", clips[0], "-a", "handcrafted", "-v", "none", "-o", no_model, "-q")
    assert not QueryLoader(no_model, device="cpu", segments="olda").start([clips[0]])
    assert multiprocessing.active_children() == []
    assert loader.start([f"{cat}#clip_0001", clips[0]])  # a media query among them
    assert len(multiprocessing.active_children()) == 1


@pytest.mark.parametrize("method", ["btrace-mean", "nw-dtw:0.1"])
def test_a_ranker_told_of_a_media_query_ranks_it_as_one_that_was_not(pipeline, music_video, overlap, method):
    """Told its queries, the ranker starts the segmentation process before loading the
    catalog and prepares the query-independent part (CSLS terms, kernels) while it runs."""
    import multiprocessing

    from vmtool.query import CatalogRanker

    _, _, cat = pipeline
    overlap(True)
    told = CatalogRanker(cat, method=method, k=5, hubness="csls:3", segments="olda", device="cpu",
                         queries=[str(music_video)])
    assert len(multiprocessing.active_children()) == 1  # before any query
    a = told.rank(str(music_video))
    overlap(False)
    import vmtool.pipeline as pipeline_mod

    pipeline_mod.close_segmenter()
    b = CatalogRanker(cat, method=method, k=5, hubness="csls:3", segments="olda", device="cpu").rank(str(music_video))
    assert [(r.id, r.distance) for r in a.ranking.results] == [(r.id, r.distance) for r in b.ranking.results]
    assert a.sections == b.sections


def test_a_ranker_told_of_queries_writes_and_raises_nothing_before_them(pipeline, music_video, overlap, tmp_path,
                                                                       monkeypatch):
    """Started ahead, the ranker computes no CSLS terms (a failing query leaves no
    CATALOG.h5.csls), and a kernel warm-up that fails is left to the query's ranking."""
    import shutil

    import vmtool.ranking
    from vmtool.errors import ParameterError
    from vmtool.query import CatalogRanker

    _, _, cat = pipeline
    copy = shutil.copy(cat, tmp_path / "catalog.h5")
    sidecar = tmp_path / "catalog.h5.csls"
    overlap(True)

    def refused(*args, **kwargs):
        raise ParameterError("the query has no segment embeddings")

    with monkeypatch.context() as m:
        m.setattr(vmtool.ranking, "rank", refused)
        ranker = CatalogRanker(copy, k=3, hubness="csls:3", segments="olda", device="cpu",
                               queries=[str(tmp_path / "missing.mp4"), str(music_video)])
    assert not sidecar.exists() and ranker.terms is None
    with pytest.raises(VmtoolError, match="no such file"):
        ranker.rank(str(tmp_path / "missing.mp4"))
    assert not sidecar.exists()
    ranked = ranker.rank(str(music_video))
    assert len(ranked.ranking.results) == 3 and sidecar.exists() and ranker.terms_note.startswith("computed")


def test_a_fresh_segmentation_process_gets_the_audio_and_its_hpss_from_this_one(pipeline, music_video, overlap,
                                                                               monkeypatch):
    """The first query of a forked process: this process decodes the audio and separates it
    while the child imports; a later query's child, or the child of a query longer than
    HAND_OVER_SECONDS, does both itself. The segments are the serial ones either way."""
    import vmtool.pipeline as pipeline_mod

    _, _, cat = pipeline
    handed = []
    real = pipeline_mod._hand_over_audio

    def recording(task):
        real(task)
        handed.append((task.audio is not None, task.hpss is not None))

    monkeypatch.setattr(pipeline_mod, "_hand_over_audio", recording)
    overlap(True)
    recipe = Recipe.from_catalog(cat)
    first = process_media(music_video, recipe, device="cpu", segments="olda")
    second = process_media(music_video, recipe, device="cpu", segments="olda")
    assert handed == [(True, True)]
    pipeline_mod.close_segmenter()
    monkeypatch.setattr(pipeline_mod, "HAND_OVER_SECONDS", 10.0)  # the 20-s clip is longer: the child does it
    process_media(music_video, recipe, device="cpu", segments="olda")
    assert handed == [(True, True)]
    overlap(False)
    serial = process_media(music_video, recipe, device="cpu", segments="olda")
    for q in (first, second):
        np.testing.assert_array_equal(q.spans, serial.spans)
        for m in serial.segments:
            np.testing.assert_array_equal(q.segments[m], serial.segments[m])


def test_msaf_takes_the_hpss_it_is_given_for_its_own_signal():
    from vmtool.dsp import hpss
    from vmtool.segmentation.music import MsafSegmenter
    from vmtool.synth import synth_music

    y, truth = synth_music(duration=30.0, sr=22050, tempo=120.0, sections="AB", seed=4)
    y = y.astype(np.float32)
    own = MsafSegmenter(y, 22050).segment("olda")
    given = MsafSegmenter(y, 22050, hpss=hpss(y)).segment("olda")
    np.testing.assert_array_equal(given.boundaries, own.boundaries)
    silent = (np.zeros_like(y), np.zeros_like(y))  # not this signal's: proves the parts are used
    assert MsafSegmenter(y, 22050, hpss=silent).segment("olda").extra["n_frames"] != own.extra["n_frames"]
    wrong = (np.zeros(10, dtype=np.float32), np.zeros(10, dtype=np.float32))  # another signal's shape: ignored
    np.testing.assert_array_equal(MsafSegmenter(y, 22050, hpss=wrong).segment("olda").boundaries, own.boundaries)


@contextlib.contextmanager
def _held_segmenter(cat, overlap, tmp_path):
    """A segmentation process started for *cat*'s recipe whose olda prepare ("imports") holds
    it until the block ends (at most a minute); yields it and the file its prepare touches
    when done."""
    import time

    go, done = tmp_path / "go", tmp_path / "prepared"

    def held(params):
        for _ in range(600):
            if go.exists():
                break
            time.sleep(0.1)
        done.touch()

    with _started_ahead(cat, held, overlap) as (_, worker):
        try:
            yield worker, done
        finally:
            go.touch()


def _size_of(array) -> int:
    """(Run in the forked child.)"""
    return int(array.size)


def test_sending_a_query_s_audio_never_waits_for_the_busy_child(pipeline, overlap, tmp_path):
    """The child reads its next call only when its imports are done; a message larger than
    the pipe's buffer is written meanwhile by a thread, so this process goes on."""
    _, _, cat = pipeline
    with _held_segmenter(cat, overlap, tmp_path) as (worker, done):
        worker.submit(_size_of, np.zeros(2_000_000, dtype=np.float32))  # 8 MB
        assert not done.exists()  # returned while the child is still "importing"
    assert worker.result() == 2_000_000 and done.exists()


def test_closing_while_the_audio_is_being_sent_ends_quietly(pipeline, overlap, tmp_path, monkeypatch):
    """An error or Ctrl-C while the child still imports: close() stops the child and the
    thread writing the audio ends without an exception of its own."""
    import threading

    import vmtool.pipeline as pipeline_mod

    _, _, cat = pipeline
    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_type))
    with _held_segmenter(cat, overlap, tmp_path) as (worker, _):
        worker.submit(_size_of, np.zeros(4_000_000, dtype=np.float32))  # 16 MB, left unread
        pipeline_mod.close_segmenter()
    assert raised == [] and worker._sender is None and not worker.alive
    assert not [t for t in threading.enumerate() if t.name == "segmentation-send"]


def test_a_hand_over_that_fails_or_is_interrupted(pipeline, music_video, overlap, monkeypatch):
    """Whatever fails while this process decodes and separates the audio is left to the
    child, which does it itself (the same segments); Ctrl-C there stops the child."""
    import multiprocessing

    import vmtool.dsp
    import vmtool.pipeline as pipeline_mod

    _, _, cat = pipeline
    overlap(True)
    recipe = Recipe.from_catalog(cat)
    assert pipeline_mod.start_segmenter(recipe, device="cpu", segments="olda")  # forked: the child keeps its hpss

    def broken(*args, **kwargs):
        raise ValueError("not this time")

    monkeypatch.setattr(vmtool.dsp, "hpss", broken)  # in this process only
    handed = process_media(music_video, recipe, device="cpu", segments="olda")
    monkeypatch.undo()
    overlap(False)
    serial = process_media(music_video, recipe, device="cpu", segments="olda")
    np.testing.assert_array_equal(handed.spans, serial.spans)

    overlap(True)
    pipeline_mod.close_segmenter()

    def interrupted(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_mod, "_hand_over_audio", interrupted)
    with pytest.raises(KeyboardInterrupt):
        process_media(music_video, recipe, device="cpu", segments="olda")
    assert multiprocessing.active_children() == []


def test_the_msaf_runner_takes_the_hpss_handed_over_with_the_item(music_video):
    from vmtool import media
    from vmtool.segment import ItemTask, SegmentConfig, segment_item

    info = media.probe(music_video)
    y = media.load_audio(music_video, 22050, resampler="librosa")
    config = SegmentConfig(methods=["olda"])

    def task(**given):
        return ItemTask(str(music_video), "mv", str(music_video), float(info.duration), True, True,
                        methods=("olda",), **given)

    own = segment_item(task(), config)["olda"]
    same = segment_item(task(audio=y), config)["olda"]
    silent = segment_item(task(audio=y, hpss=(np.zeros_like(y), np.zeros_like(y))), config)["olda"]
    np.testing.assert_array_equal(same.boundaries, own.boundaries)
    assert silent.extra["n_frames"] != own.extra["n_frames"]  # the parts handed over are the ones used


@pytest.mark.parametrize("attr", ["{not json", "[1, 2]"])
def test_a_recipe_whose_model_attribute_is_not_the_json_object_is_a_format_error(pipeline, tmp_path, attr):
    import shutil

    import h5py

    from vmtool.errors import FormatError

    _, _, cat = pipeline
    copy = shutil.copy(cat, tmp_path / "catalog.h5")
    with h5py.File(copy, "a") as f:
        f.attrs["model"] = attr
    with pytest.raises(FormatError) as err:
        Recipe.from_catalog(copy)
    assert str(err.value) == f"{copy}: root attribute 'model' is not the JSON vmtool embed writes"
