"""Training data preparation, the training loop, embedding catalogs (library level)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vmtool.embed import embed, load_catalog_model
from vmtool.errors import FormatError, ParameterError
from vmtool.models.checkpoint import load_checkpoint
from vmtool.models.losses import LossConfig
from vmtool.segmentation.aggregate import segment_features
from vmtool.store import open_collection
from vmtool.synth import synth_features
from vmtool.training import DataConfig, TrainConfig, train
from vmtool.training.data import InputBuilder, normalisation, split_items, window_inputs

SMALL = {"audio": [32, 16], "video": [32, 16]}


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    p = tmp_path_factory.mktemp("feats") / "feats.h5"
    synth_features(p, 120, seed=3, audio_only=2, video_only=1)
    return p


def _train(feats, out, **kw):
    data = kw.pop("data", DataConfig())
    cfg = kw.pop("config", TrainConfig(batch_size=32, epochs=3, val_fraction=0.2, seed=1))
    return train(feats, out, data=data, model_layers=kw.pop("layers", SMALL), config=cfg, **kw)


# --- inputs -----------------------------------------------------------------------------


def test_stats_inputs_equal_segment_features():
    rows = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    windows = np.array([[0.0, 4.0], [4.0, 10.0]])
    got = window_inputs(rows, 1.0, windows, clip_level=False, aggregation="stats", stats=["mean", "var", "max"],
                        frames=5, duration=10.0)
    want = segment_features(rows, 1.0, np.array([4.0]), 10.0, stats=["mean", "var", "max"])
    np.testing.assert_allclose(got, want)


def test_sequence_inputs_sample_frames_evenly_within_each_window():
    rows = np.arange(10, dtype=np.float32)[:, None]
    got = window_inputs(rows, 1.0, np.array([[0.0, 4.0], [4.0, 10.0]]), clip_level=False, aggregation="attention",
                        stats=[], frames=4, duration=10.0)
    assert got.shape == (2, 4, 1)
    assert got[0, :, 0].tolist() == [0, 1, 2, 3]
    assert got[1, :, 0].tolist() == [4, 6, 7, 9]
    # a window shorter than one frame repeats its frame
    short = window_inputs(rows, 1.0, np.array([[2.2, 2.4]]), clip_level=False, aggregation="autopool", stats=[],
                          frames=3, duration=10.0)
    assert short[0, :, 0].tolist() == [2, 2, 2]


def test_random_frames_are_drawn_within_each_window_and_change_every_epoch(feats, tmp_path):
    """Thesis section 5.2.3: T frames of each clip drawn at random at every epoch."""
    rows = np.arange(10, dtype=np.float32)[:, None]
    got = window_inputs(rows, 1.0, np.array([[0.0, 4.0], [4.0, 10.0]]), clip_level=False, aggregation="attention",
                        stats=[], frames=3, duration=10.0, rng=np.random.default_rng(1))
    a, b = got[0, :, 0], got[1, :, 0]
    assert set(a) <= {0, 1, 2, 3} and len(set(a)) == 3 and list(a) == sorted(a)  # no repeat when T <= frames
    assert set(b) <= set(range(4, 10)) and len(set(b)) == 3
    from vmtool.training.data import prepare

    with open_collection(feats) as c:
        cfg = DataConfig(aggregation="attention", frames=4)
        assert cfg.sampling == "random"
        builder = InputBuilder(c, cfg)
        prep = prepare(c, builder, np.arange(10), tmp_path)
        i = int(prep.item[0])
        frames, _ = builder.frames(i, "video")
        first = prep.video[prep.frame_offsets["video"][0]:prep.frame_offsets["video"][1]]
        np.testing.assert_array_equal(first, frames)  # a clip keeps all its frames
        x1 = prep.sample("video", np.array([0]), 4, np.random.default_rng([0, 1, 1]))
        x2 = prep.sample("video", np.array([0]), 4, np.random.default_rng([0, 2, 1]))
        assert x1.shape == (1, 4, frames.shape[1]) and not np.array_equal(x1, x2)  # epochs 1 and 2 differ
        assert all(any(np.array_equal(r, f) for f in frames) for r in x1[0])  # drawn from the clip's own frames
    # old model files (no setting) sampled evenly
    assert DataConfig.from_dict({"aggregation": "attention"}).sampling == "even"


def test_input_builder_defaults_and_errors(feats):
    with open_collection(feats) as c:
        b = InputBuilder(c, DataConfig())
        assert b.features == {"audio": ["synth_audio"], "video": ["synth_video"]}
        assert b.input_dim("audio") == 96 and b.input_dim("video") == 72
        b2 = InputBuilder(c, DataConfig(level="segment", segments="fixed"))
        assert b2.input_dim("audio") == 32  # segments: the mean only
        with pytest.raises(ParameterError, match="no feature 'mfcc'"):
            InputBuilder(c, DataConfig(audio_features=["mfcc"]))
        with pytest.raises(ParameterError, match="'synth_video' is video, not audio"):
            InputBuilder(c, DataConfig(audio_features=["synth_video"]))
        with pytest.raises(ParameterError, match="no segmentation 'olda'.*run vmtool segment"):
            InputBuilder(c, DataConfig(level="segment", segments="olda"))
    with pytest.raises(ParameterError, match="needs --segments"):
        DataConfig(level="segment").validate()


def test_clip_level_features_are_used_as_they_are(tmp_path):
    p = tmp_path / "clip.h5"
    synth_features(p, 10, clip_level=True)
    with open_collection(p) as c:
        b = InputBuilder(c, DataConfig())
        assert b.input_dim("audio") == 32
        x = b.inputs(0, "audio", np.array([[0.0, 5.0]]))
        np.testing.assert_array_equal(x, c.feature("synth_audio").rows(0))
        with pytest.raises(ParameterError, match="clip-level vectors; segment level"):
            InputBuilder(c, DataConfig(level="segment", segments="fixed"))
        with pytest.raises(ParameterError, match="--aggregation attention needs frame-level"):
            InputBuilder(c, DataConfig(aggregation="attention"))


def test_split_is_seeded_and_by_item():
    a = split_items(100, 0.2, 0)
    assert a.sum() == 20 and np.array_equal(a, split_items(100, 0.2, 0))
    assert not np.array_equal(a, split_items(100, 0.2, 1))
    assert split_items(100, 0.0, 0).sum() == 0


def test_normalisation_ignores_constant_columns():
    x = np.c_[np.arange(10.0), np.full(10, 3.0)].astype(np.float32)
    mean, std = normalisation(x, np.arange(10))
    np.testing.assert_allclose(mean, [4.5, 3.0])
    np.testing.assert_allclose(std, [np.std(np.arange(10.0)), 1.0], rtol=1e-6)


# --- training -----------------------------------------------------------------------------


def test_training_learns_the_association(feats, tmp_path):
    # squared distances in the triplet loss (VM-Net) give smaller gradients than distances: lr 1e-2
    res = _train(feats, tmp_path / "m.pt", config=TrainConfig(batch_size=48, epochs=15, val_fraction=0.2, seed=0,
                                                              lr=1e-2))
    # 24 validation items: chance R@10 is 10/24 = 42%, chance mean rank 12.5
    assert res.best["v2m_r10"] >= 80.0
    assert res.best["v2m_mean_rank"] < 5.0
    assert res.n_train_pairs == 96 and res.n_val_items == 24


def test_training_is_reproducible_and_resumes_exactly(feats, tmp_path):
    cfg = dict(batch_size=32, val_fraction=0.2, seed=5, patience=0)
    a = _train(feats, tmp_path / "a.pt", config=TrainConfig(epochs=4, **cfg))
    b = _train(feats, tmp_path / "b.pt", config=TrainConfig(epochs=4, **cfg))
    da, db = load_checkpoint(a.path), load_checkpoint(b.path)
    for k in da["state_dict"]:
        assert torch.equal(da["state_dict"][k], db["state_dict"][k]), k
    # 2 epochs, then --resume up to 4: the same weights as 4 straight epochs
    _train(feats, tmp_path / "c.pt", config=TrainConfig(epochs=2, **cfg))
    c = _train(feats, tmp_path / "c.pt", config=TrainConfig(epochs=4, **cfg), resume=True)
    dc = load_checkpoint(c.path)
    assert [h["epoch"] for h in dc["training"]["history"]] == [1, 2, 3, 4]
    for k in da["resume"]["state_dict"]:
        assert torch.allclose(da["resume"]["state_dict"][k].float(), dc["resume"]["state_dict"][k].float(),
                              atol=1e-6), k


def test_resume_refuses_other_settings(feats, tmp_path):
    out = tmp_path / "m.pt"
    _train(feats, out, config=TrainConfig(epochs=1, batch_size=32))
    with pytest.raises(ParameterError, match="settings differ"):
        _train(feats, out, config=TrainConfig(epochs=2, batch_size=32), resume=True,
               loss=LossConfig(name="infonce"))
    with pytest.raises(ParameterError, match="does not exist"):
        _train(feats, tmp_path / "none.pt", resume=True)


# every loss, every aggregation and both levels, in six runs (the CLI tests cover the rest)
@pytest.mark.parametrize("loss,aggregation,level", [
    ("vmnet", "stats", "segment"), ("bce", "attention", "clip"), ("cosface", "autopool", "segment"),
    ("infonce", "attention", "segment"), ("vmnet", "autopool", "clip"), ("bce", "stats", "segment"),
])
def test_every_loss_and_aggregation_trains(feats, tmp_path, loss, aggregation, level):
    res = _train(feats, tmp_path / "m.pt", data=DataConfig(level=level, segments="fixed" if level == "segment"
                                                           else None, aggregation=aggregation, frames=4),
                 loss=LossConfig(name=loss, hard_negatives=10 if loss == "vmnet" else 0),
                 config=TrainConfig(batch_size=64, epochs=2, val_fraction=0.2))
    assert res.epochs == 2 and np.isfinite(res.history[-1]["loss"])
    d = load_checkpoint(res.path)
    assert (d["segmentation"] or {}).get("method") == ("fixed" if level == "segment" else None)
    want_stats = ["mean"] if level == "segment" else ["mean", "var", "max"]
    assert d["config"]["data"]["stats"] == want_stats
    assert d["config"]["loss"]["name"] == loss
    assert d["config"]["model"]["aggregation"] == aggregation


def test_max_time_and_early_stopping(feats, tmp_path):
    res = _train(feats, tmp_path / "t.pt", config=TrainConfig(batch_size=32, epochs=1000, max_time=0.5,
                                                                   patience=0))  # only the clock can stop it
    assert res.stopped.startswith("max time") and res.epochs < 1000
    assert "resume" in load_checkpoint(res.path)  # can be continued
    res = _train(feats, tmp_path / "p.pt", config=TrainConfig(batch_size=32, epochs=1000, patience=2, lr=1e-6))
    assert res.stopped.startswith("early stop")
    assert res.epochs - res.best_epoch == 2
    assert "resume" not in load_checkpoint(res.path)


def test_failed_training_leaves_an_existing_model_untouched(feats, tmp_path):
    out = tmp_path / "m.pt"
    out.write_bytes(b"previous")
    with pytest.raises(ParameterError):
        _train(feats, out, data=DataConfig(audio_features=["nope"]))
    assert out.read_bytes() == b"previous"
    assert not [p for p in tmp_path.iterdir() if p.name != "m.pt"]


# --- embedding ----------------------------------------------------------------------------


def test_embed_writes_a_self_contained_catalog(feats, tmp_path):
    model = _train(feats, tmp_path / "m.pt", data=DataConfig(level="segment", segments="fixed"),
                   config=TrainConfig(batch_size=64, epochs=2)).path
    cat = tmp_path / "cat.h5"
    rep = embed(feats, model, cat)
    assert rep.clip == {"audio": 122, "video": 121} and rep.segmentation == "fixed"
    with open_collection(cat) as c, open_collection(feats) as f:
        assert c.ids == f.ids
        a = c.ragged("embeddings", "audio")
        seg = c.ragged("embeddings", "audio_segments")
        assert a.attrs["level"] == "clip" and seg.attrs["segmentation"] == "fixed"
        i = 0
        k = len(f.ragged("segmentations", "fixed").rows(i)) + 1
        assert seg.rows(i).shape == (k, 16)
        spans = seg.companion("spans", i)
        assert spans.shape == (k, 2) and spans[0, 0] == 0.0 and spans[-1, 1] == pytest.approx(f.item(i).duration)
        np.testing.assert_allclose(np.linalg.norm(seg.rows(i), axis=1), 1.0, atol=1e-5)
        # segment-level model: the clip embedding is the normalised centroid of its segments
        cen = seg.rows(i).astype(np.float64).mean(0)
        np.testing.assert_allclose(a.rows(i)[0], cen / np.linalg.norm(cen), atol=1e-5)
        vid_only = c.index("item-00122")
        assert not a.present(vid_only) and c.ragged("embeddings", "video").present(vid_only)
        assert c.attrs["model"]
    m = load_catalog_model(cat)
    assert m.dim == 16 and m.level == "segment"


def test_embed_float16_and_clip_model_with_segments(feats, tmp_path):
    model = _train(feats, tmp_path / "m.pt", config=TrainConfig(batch_size=64, epochs=1)).path
    cat = tmp_path / "cat.h5"
    rep = embed(feats, model, cat, dtype="float16")
    assert rep.segmentation is None
    with open_collection(cat) as c:
        assert c.names("embeddings") == ["audio", "video"]
        assert c.ragged("embeddings", "audio").rows(0).dtype == np.float16
    rep = embed(feats, model, tmp_path / "cat2.h5", segments="fixed")
    assert rep.segments["audio"] > rep.clip["audio"]


def test_embed_errors(feats, tmp_path):
    model = _train(feats, tmp_path / "m.pt", config=TrainConfig(batch_size=64, epochs=1)).path
    other = tmp_path / "other.h5"
    synth_features(other, 5, audio_dim=7)
    with pytest.raises(ParameterError, match="audio inputs are 21-d but the model expects 96-d"):
        embed(other, model, tmp_path / "x.h5")
    with pytest.raises(ParameterError, match="new file, not the features file"):
        embed(feats, model, feats)
    with pytest.raises(ParameterError, match="no segmentation 'olda'"):
        embed(feats, model, tmp_path / "x.h5", segments="olda")
    with pytest.raises(FormatError, match="not a vmtool model file"):
        embed(feats, feats, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(FormatError, match="holds no model"):
        load_catalog_model(feats)


def test_training_on_chosen_ids(feats, tmp_path):
    ids = [f"item-{i:05d}" for i in range(40)]
    res = _train(feats, tmp_path / "m.pt", ids=ids, config=TrainConfig(batch_size=16, epochs=1, val_fraction=0.25))
    assert res.n_train_pairs == 30 and res.n_val_items == 10
    with pytest.raises(ParameterError, match="1 id\\(s\\) not in the file, e.g. 'nope'"):
        _train(feats, tmp_path / "m.pt", ids=["nope", "item-00000"])
