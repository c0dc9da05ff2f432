"""``vmtool train`` and ``vmtool embed`` through the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.store import open_collection
from vmtool.synth import synth_features

SMALL = ["--audio-layers", "24,16", "--video-layers", "24,16", "-b", "32", "-q"]


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    p = tmp_path_factory.mktemp("clifeats") / "feats.h5"
    synth_features(p, 60, seed=11)
    return p


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tracked(feats, tmp_path_factory):
    """The features with a 'track' label: items 2k and 2k+1 share track tk (as videos share music)."""
    d = tmp_path_factory.mktemp("tracked")
    p = d / "tracked.h5"
    p.write_bytes(feats.read_bytes())
    ids = open_collection(p).ids
    csv = d / "tracks.csv"
    csv.write_text("id,track\n" + "".join(f"{x},t{i // 2:02d}\n" for i, x in enumerate(ids)))
    assert run("label", p, "--labels", csv, "-q").exit_code == 0
    return p


def test_train_embed_info_chain(feats, tmp_path):
    model = tmp_path / "m.pt"
    r = run("train", feats, "-o", model, "--epochs", "2", "--level", "segment", "--segments", "fixed",
            "--aggregation", "attention", "--frames", "4", "--loss", "infonce", "--audio-layers", "24,16",
            "--video-layers", "24,16", "-b", "32")
    assert r.exit_code == 0, r.output
    assert "epoch   1" in r.stderr and "val V2M R@1" in r.stderr and f"wrote {model}" in r.stderr
    assert r.stdout == ""  # stdout is for data only
    r = run("info", model, "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["kind"] == "vmtool-model" and d["data"]["level"] == "segment"
    assert d["loss"]["name"] == "infonce" and d["model"]["aggregation"] == "attention"
    assert d["training"]["epochs"] == 2 and d["segmentation"]["method"] == "fixed"
    assert "vmtool train" in d["command"]
    r = run("info", model)
    assert r.exit_code == 0 and "vmtool-model" in r.stdout and "infonce" in r.stdout
    cat = tmp_path / "cat.h5"
    r = run("embed", feats, "--model", model, "-o", cat)
    assert r.exit_code == 0, r.output
    assert "fixed segment embeddings" in r.stderr
    with open_collection(cat) as c:
        assert c.names("embeddings") == ["audio", "audio_segments", "video", "video_segments"]
    r = run("info", cat)
    assert "audio_segments" in r.stdout


@pytest.mark.parametrize("loss", ["vmnet", "bce", "cosface", "infonce"])
def test_every_loss_from_the_cli(feats, tmp_path, loss):
    r = run("train", feats, "-o", tmp_path / "m.pt", "--epochs", "1", "--loss", loss, *SMALL)
    assert r.exit_code == 0, r.output
    info = json.loads(run("info", tmp_path / "m.pt", "--format", "json").stdout)
    assert (info["loss"]["name"], info["training"]["epochs"]) == (loss, 1)


@pytest.mark.parametrize("args, expected", [
    (["--loss", "cosface:music_weight=0.5,sim_margin=0.2,sim_weight=2,max_classes=16,scale=20,margin=0.3"],
     {"music_weight": 0.5, "sim_margin": 0.2, "sim_weight": 2.0, "max_classes": 16, "scale": 20.0,
      "cos_margin": 0.3, "margin": 0.1}),  # cosface's margin is mu, the field cos_margin
    (["--loss", "vmnet:neighbours=3,lambdas=1,2,0.5,0,margin=0.3"],
     {"neighbours": 3, "lambdas": [1.0, 2.0, 0.5, 0.0], "margin": 0.3}),
    # an explicit --loss keeps the preset's loss parameters it does not set
    (["--preset", "segvmnet", "--segments", "fixed", "--loss", "vmnet:margin=0.2"],
     {"margin": 0.2, "lambdas": [1.0, 1.0, 0.0, 0.0], "hard_negatives": 0}),
    (["--model", "dpvm", "--fusion", "content", "--loss", "dpvm:margin=0.4,mu2=-1"],
     {"name": "dpvm", "margin": 0.4, "mu2": -1.0, "metric": "contrastive"}),
], ids=["cosface", "vmnet", "preset", "dpvm"])
def test_loss_parameters_reach_the_model_file(feats, tmp_path, args, expected):
    from vmtool.models.checkpoint import load_checkpoint

    m = tmp_path / "m.pt"
    r = run("train", feats, "-o", m, "--epochs", "1", *SMALL, *args)
    assert r.exit_code == 0, r.output
    loss = load_checkpoint(m)["config"]["loss"]
    assert {k: loss[k] for k in expected} == expected


@pytest.mark.parametrize("aggregation", ["stats", "attention", "autopool"])
def test_every_aggregation_from_the_cli(feats, tmp_path, aggregation):
    r = run("train", feats, "-o", tmp_path / "m.pt", "--epochs", "1", "--aggregation", aggregation,
            "--frames", "5", "--loss", "vmnet:hard_negatives=5", *SMALL)
    assert r.exit_code == 0, r.output
    info = json.loads(run("info", tmp_path / "m.pt", "--format", "json").stdout)
    assert (info["model"]["aggregation"], info["loss"]["hard_negatives"]) == (aggregation, 5)


def test_train_errors(feats, tmp_path):
    out = tmp_path / "m.pt"
    r = run("train", feats, "-o", out, "--level", "segment", *SMALL)
    assert r.exit_code == 1 and "Error: --level segment needs --segments METHOD" in r.stderr
    r = run("train", feats, "-o", out, "--level", "segment", "--segments", "olda", *SMALL)
    assert r.exit_code == 1 and f"Error: {feats}: no segmentation 'olda'" in r.stderr
    r = run("train", feats, "-o", out, "--audio-layers", "24,16", "--video-layers", "24,8", "-q")
    assert r.exit_code == 1 and "same width" in r.stderr
    r = run("train", feats, "-o", out, "--loss", "vmnet:lambdas=1,2", *SMALL)
    assert r.exit_code == 2 and "--loss vmnet: lambdas must be four numbers" in r.stderr
    r = run("train", feats, "-o", out, "--audio-layers", "a,b", "--video-layers", "8", "-q")
    assert r.exit_code == 1 and "--audio-layers must be" in r.stderr
    r = run("train", tmp_path / "missing.h5", "-o", out, *SMALL)
    assert r.exit_code == 1 and "missing.h5" in r.stderr
    r = run("train", feats, "-o", out, "--resume", *SMALL)
    assert r.exit_code == 1 and "cannot resume" in r.stderr
    r = run("train", feats, "-o", out, "--loss", "hinge", *SMALL)
    assert r.exit_code == 2
    assert not out.exists()


def test_embed_errors(feats, tmp_path):
    r = run("embed", feats, "--model", tmp_path / "none.pt", "-o", tmp_path / "c.h5", "-q")
    assert r.exit_code == 3 and "none.pt: no such model file" in r.stderr
    bad = tmp_path / "bad.pt"
    bad.write_text("x")
    r = run("embed", feats, "--model", bad, "-o", tmp_path / "c.h5", "-q")
    assert r.exit_code == 3 and "bad.pt: not a vmtool model file" in r.stderr
    assert not (tmp_path / "c.h5").exists()


@pytest.mark.parametrize("args, code, message", [
    (["--loss", "vmnet:margin=-0.1"], 2, "--loss vmnet: margin must be a number >= 0, got '-0.1'"),
    (["--loss", "cosface:scale=0"], 2, "--loss cosface: scale must be a positive number, got '0'"),
    (["--loss", "cosface:scale=-30"], 2, "--loss cosface: scale must be a positive number, got '-30'"),
    (["--loss", "infonce:temperature=nan"], 2, "--loss infonce: temperature must be a positive number, got 'nan'"),
    (["--loss", "vmnet:lambdas=3,nan,0.2,0.2"], 2,
     "--loss vmnet: lambdas must be four numbers >= 0 like 3,1,0.2,0.2, got '3,nan,0.2,0.2'"),
    (["--audio-layers", "-16", "--video-layers", "16"], 1,
     "--audio-layers must be positive widths like 2048,1024,512, got '-16'"),
    (["--audio-layers", "24,-16", "--video-layers", "16"], 1,
     "--audio-layers must be positive widths like 2048,1024,512, got '24,-16'"),
])
def test_unusable_hyper_parameters_are_refused_before_training(feats, tmp_path, args, code, message):
    """A zero, negative or NaN hyper-parameter is named up front, not reported later as a
    NaN loss with the advice to lower --lr."""
    out = tmp_path / "m.pt"
    r = run("train", feats, "-o", out, "--epochs", "2", *SMALL, *args)
    assert r.exit_code == code, r.output
    assert r.stderr.strip().splitlines() == [f"Error: {message}"]
    assert not out.exists()


def test_interrupted_training_says_what_the_model_file_holds(feats, tmp_path, monkeypatch):
    from vmtool.cli import train as train_cli

    def interrupt_at_epoch_3(self, record):
        if record["epoch"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_cli._Reporter, "epoch_end", interrupt_at_epoch_3)
    out = tmp_path / "m.pt"
    # without a validation split every epoch counts as an improvement, so epochs 1 and 2 were saved
    r = run("train", feats, "-o", out, "--epochs", "5", "--patience", "0", "--val-fraction", "0", *SMALL)
    assert r.exit_code == 130
    line = r.stderr.strip().splitlines()[-1]
    training = json.loads(run("info", out, "--format", "json").stdout)["training"]
    assert (training["epochs"], training["best_epoch"]) == (2, 2)
    assert line == (f"Error: interrupted; {out} holds the checkpoint written after epoch {training['epochs']} "
                    f"(best epoch {training['best_epoch']}); vmtool train --resume continues from it")


# --- presets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vmnet", "pretet2021", "pretet2021-bce", "segvmnet", "vmcml"])
def test_every_preset_trains_from_the_cli(feats, tracked, tmp_path, name):
    from vmtool.models.checkpoint import load_checkpoint
    from vmtool.training.presets import PRESETS

    m = tmp_path / "p.pt"
    feats = tracked if name == "vmcml" else feats  # VMCML's prototypes are the music tracks
    # the papers' sizes are overridden to stay tiny; everything else comes from the preset
    r = run("train", feats, "-o", m, "--preset", name, "--epochs", "2", "--segments", "fixed", "--frames", "4",
            "--audio-layers", "24,16", "--video-layers", "24,16", "-b", "32")
    assert r.exit_code == 0, r.output
    assert f"preset {name} (" in r.stderr
    cfg = load_checkpoint(m)["config"]
    s = PRESETS[name].settings
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["batch_size"] == 32  # explicit options win
    assert cfg["model"]["audio_layers"] == [24, 16]
    assert cfg["train"]["lr"] == s["lr"] and cfg["model"]["dropout"] == s["dropout"]
    assert cfg["loss"]["name"] == s["loss"].partition(":")[0] and cfg["data"]["level"] == s["level"]
    assert cfg["train"]["weight_decay"] == s.get("weight_decay", 0.0)
    if name == "segvmnet":
        assert cfg["loss"]["lambdas"] == [1.0, 1.0, 0.0, 0.0] and cfg["loss"]["margin"] == 0.1
        assert cfg["loss"]["hard_negatives"] == 0 and cfg["data"]["segments"] == "fixed"
    if name == "vmcml":
        loss = cfg["loss"]
        assert (loss["music_weight"], loss["sim_margin"], loss["sim_weight"], loss["cos_margin"]) == (0.38, 0.2, 2.0, 0.2)
        assert cfg["train"]["weight_decay"] == 0.002 and cfg["train"]["lr"] == 1e-5
    if name == "pretet2021":
        assert cfg["data"]["aggregation"] == "attention" and cfg["data"]["sampling"] == "random"
    if name == "pretet2021-bce":
        assert cfg["model"]["fusion_head"] and cfg["train"]["patience"] == 0


def test_an_explicit_default_value_still_wins_over_the_preset(feats, tmp_path):
    from vmtool.models.checkpoint import load_checkpoint

    m = tmp_path / "p.pt"
    # --dropout 0.2 is the option's default, but given explicitly it overrides vmnet's 0.5
    r = run("train", feats, "-o", m, "--preset", "vmnet", "--dropout", "0.2", "--epochs", "1", *SMALL)
    assert r.exit_code == 0, r.output
    assert load_checkpoint(m)["config"]["model"]["dropout"] == 0.2


def test_train_help_lists_the_presets():
    r = run("train", "--help")
    for name in ("vmnet", "pretet2021", "segvmnet", "vmcml"):
        assert name in r.stdout


def test_train_help_lists_every_loss_with_its_keys_and_defaults():
    r = run("train", "--help")
    assert r.exit_code == 0
    assert "margin=0.1 lambdas=3,1,0.2,0.2 hard_negatives=0 neighbours=1" in r.stdout
    assert "temperature=0.07" in r.stdout and "margin=0.5 mu2=1 metric=contrastive" in r.stdout
    for name in ("vmnet", "bce", "cosface", "infonce", "ppml", "dpvm"):
        assert f"  {name} " in r.stdout


# --- --loss NAME:KEY=VALUE ---------------------------------------------------------------------

#: every per-loss option of vmtool train before --loss took parameters, and what replaces it
RETIRED = [
    (["--margin", "0.2"], "--margin is now part of --loss: use --loss vmnet:margin=0.2"),
    (["--lambdas", "1,1,0,0"], "--lambdas is now part of --loss: use --loss vmnet:lambdas=1,1,0,0"),
    (["--hard-negatives", "100"], "--hard-negatives is now part of --loss: use --loss vmnet:hard_negatives=100"),
    (["--neighbours", "3"], "--neighbours is now part of --loss: use --loss vmnet:neighbours=3"),
    (["--temperature", "0.1"], "--temperature is now part of --loss: use --loss infonce:temperature=0.1"),
    (["--cos-scale", "20"], "--cos-scale is now part of --loss: use --loss cosface:scale=20"),
    (["--cos-margin", "0.3"], "--cos-margin is now part of --loss: use --loss cosface:margin=0.3"),
    (["--cos-music-weight", "1"], "--cos-music-weight is now part of --loss: use --loss cosface:music_weight=1"),
    (["--sim-margin", "0.1"], "--sim-margin is now part of --loss: use --loss cosface:sim_margin=0.1"),
    (["--sim-weight", "1"], "--sim-weight is now part of --loss: use --loss cosface:sim_weight=1"),
    (["--max-classes", "0"], "--max-classes is now part of --loss: use --loss cosface:max_classes=0"),
    (["--class-label", "track"], "--class-label is now part of --loss: use --loss cosface:class_label=track"),
    (["--dpvm-margin", "0.4"], "--dpvm-margin is now part of --loss: use --loss dpvm:margin=0.4"),
    (["--dpvm-mu2", "-1"], "--dpvm-mu2 is now part of --loss: use --loss dpvm:mu2=-1"),
    (["--metric", "ppml"], "--metric is now part of --loss: use --loss dpvm:metric=ppml"),
    # the = spelling, several options, a --loss given with them, a value with a space
    (["--cos-scale=20"], "--cos-scale is now part of --loss: use --loss cosface:scale=20"),
    (["--loss", "cosface", "--cos-scale", "20", "--sim-weight", "1"],
     "--cos-scale, --sim-weight are now part of --loss: use --loss cosface:scale=20,sim_weight=1"),
    (["--loss=cosface:margin=0.3", "--cos-scale", "20"],
     "--cos-scale is now part of --loss: use --loss cosface:margin=0.3,scale=20"),
    (["--class-label", "music track"],
     "--class-label is now part of --loss: use --loss 'cosface:class_label=music track'"),
]


@pytest.mark.parametrize("args, message", RETIRED, ids=[a[0] for a, _ in RETIRED])
def test_retired_loss_options_are_refused_with_the_new_spelling(tmp_path, args, message):
    r = run("train", tmp_path / "feats.h5", "-o", tmp_path / "m.pt", *args)
    assert r.exit_code == 2
    assert r.stderr == f"Error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_every_retired_option_has_a_row():
    from vmtool.models.loss_registry import LOSSES

    old = {p.old for x in LOSSES.values() for p in x.params if p.old}
    assert old == {a[0] for a, _ in RETIRED[:15]} and len(old) == 15


@pytest.mark.parametrize("spec, message", [
    ("cosface:scal=3", "--loss cosface: unknown parameter 'scal'; cosface takes scale, margin, music_weight, "
                       "sim_margin, sim_weight, max_classes, class_label"),
    ("bce:margin=1", "--loss bce: unknown parameter 'margin'; bce takes no parameters"),
    ("hinge", "--loss: unknown loss 'hinge'; losses: vmnet, bce, cosface, infonce, ppml, dpvm"),
    ("cosface:scale=abc", "--loss cosface: scale must be a positive number, got 'abc'"),
    ("cosface:max_classes=1.5", "--loss cosface: max_classes must be an integer >= 0, got '1.5'"),
    ("vmnet:hard_negatives=-1", "--loss vmnet: hard_negatives must be an integer >= 0, got '-1'"),
    ("dpvm:metric=cosine", "--loss dpvm: metric must be one of contrastive, ppml, got 'cosine'"),
    ("dpvm:margin=-0.5", "--loss dpvm: margin must be a number >= 0, got '-0.5'"),
    ("vmnet:0.2", "--loss vmnet: expected KEY=VALUE after ':', got '0.2'"),
    ("vmnet:margin=0.1,margin=0.2", "--loss vmnet: margin is given twice"),
    ("vmnet:neighbours=0", "--loss vmnet: neighbours must be an integer >= 1, got '0'"),
])
def test_bad_loss_specs_are_usage_errors(tmp_path, spec, message):
    r = run("train", tmp_path / "feats.h5", "-o", tmp_path / "m.pt", "--loss", spec)
    assert r.exit_code == 2
    assert r.stderr == f"Error: {message}\n"


@pytest.mark.parametrize("args, message", [
    (["--loss", "dpvm"], "--loss dpvm is DPVM's objective (eq. 8): add --model dpvm"),
    (["--model", "dpvm", "--loss", "infonce"], "--model dpvm trains its own objective (eq. 8): --loss infonce applies "
                                               "to the VM-Net family; DPVM's parameters are --loss dpvm:KEY=VALUE"),
])
def test_a_loss_of_the_other_model_family_is_refused(feats, tmp_path, args, message):
    r = run("train", feats, "-o", tmp_path / "m.pt", *SMALL, *args)
    assert r.exit_code == 1
    assert r.stderr == f"Error: {message}\n"


def test_bce_catalog_ranks_by_its_pair_classifier(feats, tmp_path):
    """Prétet et al. 2021 rank a BCE model by the classifier's output, not by embedding distance."""
    import numpy as np

    from vmtool.embed import load_catalog_model
    from vmtool.ranking import load_catalog
    from vmtool.ranking.evaluate import ground_truth_ranks

    model, cat = tmp_path / "bce.pt", tmp_path / "bce.h5"
    assert run("train", feats, "-o", model, "--loss", "bce", "--epochs", "2", *SMALL).exit_code == 0
    assert run("embed", feats, "--model", model, "-o", cat, "-q").exit_code == 0
    r = run("evaluate", cat, "-m", "head,clip", "-d", "both", "--format", "json", "--ranks", "-q")
    assert r.exit_code == 0, r.output
    res = {(x["method"], x["direction"]): x for x in json.loads(r.stdout)["results"]}
    # the same ranks by hand: the head's logit of every (video, music) pair
    lm = load_catalog_model(cat)
    v, a = load_catalog(cat, "video", segments=False), load_catalog(cat, "audio", segments=False)
    logits = lm.pair_logits(v.clip.astype(np.float32), a.clip.astype(np.float32))
    assert res[("head", "v2m")]["ranks"] == ground_truth_ranks(-logits.astype(np.float64)).tolist()
    assert res[("head", "m2v")]["ranks"] == ground_truth_ranks(-logits.T.astype(np.float64)).tolist()
    first = v.ids[0]
    r = run("rank", f"{cat}#{first}", cat, "-m", "head", "-k", "3", "--format", "json", "-q")
    assert r.exit_code == 0, r.output
    top = json.loads(r.stdout)["results"]
    assert top[0]["distance"] == pytest.approx(-float(logits[0].max()), rel=1e-5)


def test_head_needs_a_bce_model(feats, tmp_path):
    model, cat = tmp_path / "tl.pt", tmp_path / "tl.h5"
    assert run("train", feats, "-o", model, "--epochs", "1", *SMALL).exit_code == 0
    assert run("embed", feats, "--model", model, "-o", cat, "-q").exit_code == 0
    r = run("evaluate", cat, "-m", "head", "-q")
    assert r.exit_code == 1
    assert r.stderr.strip() == (f"Error: {cat}: method 'head' needs a model trained with --loss bce; this "
                                f"catalog's model has no pair classifier")


# --- VMCML: one prototype per music track -------------------------------------------------------


def test_videos_of_one_track_share_its_prototype(tracked, tmp_path):
    import numpy as np

    from vmtool.models.checkpoint import load_checkpoint

    m, cat = tmp_path / "v.pt", tmp_path / "v.h5"
    r = run("train", tracked, "-o", m, "--loss", "cosface:class_label=track", "--epochs", "2",
            "--val-fraction", "0.2", *SMALL)
    assert r.exit_code == 0, r.output
    ck = load_checkpoint(m)
    ids = open_collection(tracked).ids
    track = {x: f"t{i // 2:02d}" for i, x in enumerate(ids)}
    names = ck["config"]["classes"]["names"]
    assert ck["config"]["classes"]["label"] == "track" and ck["config"]["loss"]["class_label"] == "track"
    assert names == sorted(set(names)) and set(names) <= set(track.values())
    # one prototype per track of the training items (validation items may bring tracks of their own)
    assert ck["state_dict"]["prototypes"].shape[0] == len(names) >= 24
    r = run("embed", tracked, "--model", m, "-o", cat)
    assert r.exit_code == 0, r.output
    from vmtool.ranking import load_catalog

    music = load_catalog(cat, "audio", segments=False)
    w = ck["state_dict"]["prototypes"].numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    seen = [i for i, x in enumerate(music.ids) if track[x] in names]
    assert f"{len(seen)} music embedding(s) from the model's track prototypes" in r.stderr
    for i in seen:  # a seen track's music embedding is its prototype, for both its items
        np.testing.assert_allclose(music.clip[i], w[names.index(track[music.ids[i]])], atol=1e-6)
    plain = tmp_path / "plain.h5"
    assert run("embed", tracked, "--model", m, "-o", plain, "--no-prototypes", "-q").exit_code == 0
    other = load_catalog(plain, "audio", segments=False)
    assert not np.allclose(other.clip[seen[0]], music.clip[seen[0]])


def test_track_classes_need_the_track_label(feats, tmp_path):
    m = tmp_path / "v.pt"
    r = run("train", feats, "-o", m, "--preset", "vmcml", "--epochs", "1", *SMALL)
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines()[-1].startswith(f"Error: {feats}: no label column 'track'")
    assert not m.exists()


def test_dpvm_preset_trains_from_the_cli(feats, tmp_path):
    from vmtool.models.checkpoint import load_checkpoint

    p = tmp_path / "emo.h5"
    p.write_bytes(feats.read_bytes())
    ids = open_collection(p).ids
    emotions = ("happy", "sad", "tense", "tender")
    csv = tmp_path / "emotions.csv"
    csv.write_text("id,video_emotion,music_emotion\n"
                   + "".join(f"{x},{emotions[i % 4]},{emotions[i % 4]}\n" for i, x in enumerate(ids)))
    assert run("label", p, "--labels", csv, "-q").exit_code == 0
    m = tmp_path / "d.pt"
    r = run("train", p, "-o", m, "--preset", "dpvm", "--epochs", "1")
    assert r.exit_code == 0, r.output
    assert "preset dpvm (" in r.stderr
    cfg = load_checkpoint(m)["config"]
    assert cfg["model"]["family"] == "dpvm" and cfg["model"]["fusion"] == "interactive"
    assert cfg["train"]["lr"] == 1e-4 and cfg["train"]["batch_size"] == 16 and cfg["train"]["patience"] == 0
    assert cfg["optimizer"]["betas"] == [0.5, 0.999] and cfg["loss"]["metric"] == "contrastive"

