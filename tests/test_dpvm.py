"""DPVM (Gu, Shen and Lv): each loss against a literal transcription of its equation, the
network's fusions, training from labels, and the model file used like any other."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vmtool.errors import ParameterError
from vmtool.models.dpvm import (DPVMConfig, DPVMLossConfig, DPVMNet, contrastive_loss, discrimination_loss,
                                dpvm_loss, emotion_intermodal_loss, polarity_penalty_loss, reconstruction_loss)

V = [[1.0, 0.0], [0.6, 0.8], [0.0, -2.0]]
M = [[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]]


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_eq1_reconstruction():
    rv, rm = [[2.0, 0.0], [0.0, 1.0], [0.0, -1.0]], [[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]]
    # ||V - D(E(V))|| + ||M - D(E(M))||, cosine distance, mean over the 3 pairs
    want = sum(1 - cos(v, r) for v, r in zip(V, rv)) / 3 + sum(1 - cos(m, r) for m, r in zip(M, rm)) / 3
    # by hand: V: 0, 0.2, 0 ; M: 0, 1, 1
    assert want == pytest.approx((0 + 0.2 + 0) / 3 + (0 + 1 + 1) / 3)
    assert float(reconstruction_loss(t(V), t(rv), t(M), t(rm))) == pytest.approx(want)


def test_eq2_contrastive_with_margin_and_known_negatives():
    margin = 0.5
    neg = torch.tensor([[False, True, True], [True, False, False], [True, False, False]])  # items 1, 2: same clip
    d = [[1 - cos(v, m) for m in M] for v in V]
    pos = [0.5 * d[i][i] ** 2 for i in range(3)]  # Y = 0
    negs = [0.5 * max(0.0, margin - d[i][j]) ** 2 for i in range(3) for j in range(3) if neg[i, j]]  # Y = 1
    extra_v, extra_m = [[1.0, 1.0]], [[1.0, 0.9]]
    negs.append(0.5 * max(0.0, margin - (1 - cos(extra_v[0], extra_m[0]))) ** 2)
    want = sum(pos) / 3 + sum(negs) / len(negs)
    got = contrastive_loss(t(V), t(M), neg, margin, extra=(t(extra_v), t(extra_m)))
    assert float(got) == pytest.approx(want)
    # d[0][1] = 0 (v0 = m1): a violating negative, 0.5 * 0.5^2
    assert 0.5 * max(0.0, margin - d[0][1]) ** 2 == pytest.approx(0.125)


def test_eq4_discrimination_cross_entropy():
    lv, lm = [[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0], [0.0, 3.0, 0.0]]
    yv, ym = [0, -1], [2, 1]  # the second video has no label: left out

    def ce(logits, y):
        return -math.log(math.exp(logits[y]) / sum(math.exp(x) for x in logits))

    want = ce(lv[0], 0) + (ce(lm[0], 2) + ce(lm[1], 1)) / 2
    assert ce(lm[0], 2) == pytest.approx(math.log(3))
    got = discrimination_loss(t(lv), torch.tensor(yv), t(lm), torch.tensor(ym))
    assert float(got) == pytest.approx(want)


def test_eq5_emotion_intermodal_has_the_papers_sign():
    want = -sum(1 - cos(v, m) for v, m in zip(V, M)) / 3
    # by hand: 1 - 0.8, 1 - 0.6, 1 - (-1) -> -(0.2 + 0.4 + 2) / 3
    assert want == pytest.approx(-2.6 / 3)
    assert float(emotion_intermodal_loss(t(V), t(M))) == pytest.approx(want)


def test_eqs10_to_12_polarity_penalty():
    pol = [1.0, -1.0, 0.0]
    terms = []
    for k in range(3):
        for i in range(3):
            if i == k:
                continue
            phi_ki, phi_kk = cos(V[k], M[i]), cos(V[k], M[k])
            rho = 0.0 if phi_ki < phi_kk else 1.0          # eq. 10
            p = abs(pol[k] - pol[i])                       # eq. 11
            terms.append(p * rho * phi_ki - phi_kk)        # eq. 12
    want = sum(terms) / len(terms)
    # by hand, (k, i): P rho phi_ki - phi_kk
    # (0,1) 2*1*1 - .8   (0,2) rho 0 (0 < .8): -.8
    # (1,0) 2*1*.96 - .6 (1,2) 1*1*.8 - .6
    # (2,0) 1*1*(-.6) + 1 (2,1) 1*1*0 + 1
    assert want == pytest.approx((1.2 - 0.8 + 1.32 + 0.2 + 0.4 + 1.0) / 6)
    assert float(polarity_penalty_loss(t(V), t(M), t(pol))) == pytest.approx(want)


def test_eq8_total_is_the_weighted_sum_of_its_terms():
    torch.manual_seed(0)
    cfg = DPVMConfig(audio_dim=5, video_dim=4, common=8, content_layers=[6, 3], emotion_layers=[6, 2],
                     n_emotions=3, fusion="interactive", fusion_dim=4, dropout=0.0)
    net = DPVMNet(cfg).double()
    a, v = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    clips = torch.arange(4)
    y = torch.tensor([0, 1, 2, 1])
    lc = DPVMLossConfig(margin=0.5)
    total, parts = dpvm_loss(lc, net, a, v, clips, y_video=y, y_music=y)
    want = (0.5 * (0.8 * parts["recon"] + 1.0 * parts["content_metric"])
            + 0.5 * (0.8 * parts["discrimination"] + 1.0 * parts["emotion_intermodal"]) + 1.0 * parts["fusion"])
    assert float(total.detach()) == pytest.approx(want)
    neg = clips[:, None] != clips[None, :]
    pv, pm = net.paths("video", v), net.paths("audio", a)
    assert parts["fusion"] == pytest.approx(float(contrastive_loss(pv["fused"], pm["fused"], neg, 0.5).detach()))
    # the content path alone (DPVM_C) has eq. 3 only
    net_c = DPVMNet(DPVMConfig(audio_dim=5, video_dim=4, fusion="content", dropout=0.0)).double()
    _, parts_c = dpvm_loss(lc, net_c, a, v, clips)
    assert sorted(parts_c) == ["content_metric", "recon"]


@pytest.mark.parametrize(("fusion", "dim"), [("interactive", 128), ("splicing", 192), ("content", 128),
                                             ("emotion", 64)])
def test_fusions_give_unit_embeddings(fusion, dim):
    net = DPVMNet(DPVMConfig(audio_dim=7, video_dim=5, n_emotions=3, fusion=fusion)).eval()
    e = net.embed("video", torch.randn(3, 5))
    assert e.shape == (3, dim) == (3, net.config.dim)
    np.testing.assert_allclose(e.norm(dim=1).detach().numpy(), 1.0, rtol=1e-5)


@pytest.fixture
def labelled(tmp_path):
    """Synthetic features whose pairs share one of 3 emotions, with labels and negatives."""
    from vmtool.labels import apply_labels
    from vmtool.store import open_collection
    from vmtool.synth import synth_features

    p = tmp_path / "f.h5"
    synth_features(p, 24, clip_level=True, seed=0)
    ids = open_collection(p).ids
    csv = tmp_path / "l.csv"
    csv.write_text("id,video_emotion,music_emotion,polarity\n" + "".join(
        f"{x},e{k % 3},e{k % 3},{k % 3 - 1}\n" for k, x in enumerate(ids)))
    neg = tmp_path / "n.csv"
    neg.write_text("video_id,music_id\n" + "".join(f"{ids[k]},{ids[k + 1]}\n" for k in range(0, 10, 2)))
    apply_labels(p, labels=csv, negatives=neg)
    return p


def test_train_embed_from_labels(labelled, tmp_path):
    from vmtool.embed import embed
    from vmtool.models.checkpoint import load_model
    from vmtool.models.dpvm import DPVMLossConfig
    from vmtool.store import open_collection
    from vmtool.training import DataConfig, TrainConfig, train

    out = tmp_path / "m.pt"
    res = train(labelled, out, data=DataConfig(), model="dpvm", loss=DPVMLossConfig(metric="ppml"),
                model_options={"fusion": "splicing"},
                config=TrainConfig(batch_size=8, epochs=2, val_fraction=0.0, lr=1e-3))
    assert res.epochs == 2
    m = load_model(out)
    assert m.model_config.fusion == "splicing" and m.model_config.emotion_classes == ["e0", "e1", "e2"]
    assert m.data["config"]["optimizer"]["betas"] == [0.5, 0.999]
    cat = tmp_path / "cat.h5"
    embed(labelled, out, cat)
    with open_collection(cat) as c:
        assert c.ragged("embeddings", "video").dim == 192
        assert c.label("video_emotion")[:3].tolist() == ["e0", "e1", "e2"]


def test_missing_labels_are_named(tmp_path):
    from vmtool.training import DataConfig, TrainConfig, train
    from vmtool.synth import synth_features

    p = tmp_path / "f.h5"
    synth_features(p, 6, clip_level=True, seed=0)
    with pytest.raises(ParameterError, match=r"f\.h5: no label column 'video_emotion' .*DPVM's emotion path"):
        train(p, tmp_path / "m.pt", data=DataConfig(), model="dpvm", config=TrainConfig(batch_size=4, epochs=1))
    assert not (tmp_path / "m.pt").exists()


def test_cli_end_to_end_on_an_emotion_corpus(tmp_path):
    """extract -> label -> train --model dpvm -> embed -> evaluate --label, on generated clips."""
    import json

    from typer.testing import CliRunner

    from vmtool.cli import app
    from vmtool.synth import make_corpus

    def run(*args):
        res = CliRunner().invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, res.stderr
        return res

    clips = make_corpus(tmp_path / "corpus", 8, duration=4.0, seed=2, size=(64, 36), emotions=True,
                        video_follows="emotion")
    feats, model, cat = tmp_path / "f.h5", tmp_path / "m.pt", tmp_path / "c.h5"
    run("extract", *[c.path for c in clips], "-a", "handcrafted", "-v", "color", "-o", feats, "-q")
    run("label", feats, "--labels", tmp_path / "corpus" / "labels.csv", "-q")
    run("train", feats, "-o", model, "--model", "dpvm", "-b", "4", "--epochs", "2", "--val-fraction", "0", "-q")
    run("embed", feats, "--model", model, "-o", cat, "-q")
    out = json.loads(run("evaluate", cat, "-m", "clip", "--label", "polarity", "-f", "json", "-q").stdout)
    assert out["label"] == {"video": "polarity", "music": "polarity"}
    res = out["results"][0]
    assert res["queries"] == 8 and 0 <= res["label_match1"] <= 100
    assert res["label_chance"] == pytest.approx(50.0)  # 4 positive, 4 negative clips
    assert "LM@10" in run("evaluate", cat, "-m", "clip", "-q").stdout  # the emotion by default
    assert "DPVM, interactive fusion" in run("info", model).stdout
