"""Networks, losses and model files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from vmtool.errors import FormatError
from vmtool.models.checkpoint import load_checkpoint, load_model, read_model_info, save_model
from vmtool.models.losses import LossConfig, _cosface, _sample_classes, compute_loss, negatives_mask
from vmtool.models.nets import Attention, AutoPool, Branch, ModelConfig, VMNet


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


# --- networks ---------------------------------------------------------------------------


def test_attention_pooling_matches_its_formula():
    torch.manual_seed(0)
    att = Attention(5)
    x = torch.randn(3, 7, 5)
    a = torch.softmax(torch.tanh(x @ att.score.weight[0] + att.score.bias), dim=1)
    want = (a[..., None] * x).sum(1)
    assert torch.allclose(att(x), want, atol=1e-6)


def test_attention_ignores_masked_frames():
    torch.manual_seed(0)
    att = Attention(4)
    x = torch.randn(2, 6, 4)
    mask = torch.tensor([[True] * 3 + [False] * 3] * 2)
    y = att(x, mask)
    x2 = x.clone()
    x2[:, 3:] = 100.0  # masked frames may hold anything
    assert torch.allclose(att(x2, mask), y)


def test_autopool_spans_mean_to_max():
    x = torch.randn(2, 9, 3)
    ap = AutoPool(3)
    assert torch.allclose(ap(x), x.mean(1), atol=1e-6)  # alpha = 0: the mean
    with torch.no_grad():
        ap.alpha.fill_(200.0)
    assert torch.allclose(ap(x), x.max(1).values, atol=1e-3)
    with torch.no_grad():
        ap.alpha.fill_(-200.0)
    assert torch.allclose(ap(x), x.min(1).values, atol=1e-3)


@pytest.mark.parametrize("aggregation", ["stats", "attention", "autopool"])
def test_branch_outputs_unit_vectors(aggregation):
    torch.manual_seed(0)
    b = Branch(10, [16, 8], 0.1, aggregation).eval()
    x = torch.randn(4, 10) if aggregation == "stats" else torch.randn(4, 5, 10)
    y = b(x)
    assert y.shape == (4, 8)
    assert torch.allclose(y.norm(dim=1), torch.ones(4), atol=1e-5)


def test_vmnet_layers_follow_the_config():
    net = VMNet(ModelConfig(audio_dim=1218, video_dim=3150))
    lin = [m for m in net.audio.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(1218, 2048), (2048, 1024), (1024, 512)]
    lin = [m for m in net.video.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(3150, 2048), (2048, 512)]
    assert isinstance(net.audio.mlp[-1], torch.nn.BatchNorm1d)
    with pytest.raises(ValueError, match="same width"):
        VMNet(ModelConfig(audio_dim=3, video_dim=3, audio_layers=[8, 4], video_layers=[8, 5]))


# --- losses -----------------------------------------------------------------------------


def test_vmnet_triplet_value_on_a_hand_example():
    """L(a, p, n) = max(||a - p||^2 - ||a - n||^2 + alpha, 0) (000 and 001, section III),
    by hand: m0 = (1, 0), m1 = (0, 1), v0 = (1, 0), v1 = (0.6, 0.8). Squared distances
    |v0-m0|^2 = 0, |v0-m1|^2 = 2, |v1-m0|^2 = 0.16 + 0.64 = 0.8, |v1-m1|^2 = 0.36 + 0.04 = 0.4.
    alpha = 0.5: L_VM = (max(0 - 2 + .5, 0) + max(0.4 - 0.8 + .5, 0)) / 2 = 0.05;
    L_MV = (max(0 - 0.8 + .5, 0) + max(0.4 - 2 + .5, 0)) / 2 = 0."""
    m = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    loss, parts = compute_loss(LossConfig(margin=0.5, lambdas=(1.0, 1.0, 0.0, 0.0)), v, m, torch.tensor([0, 1]))
    assert parts["vm"] == pytest.approx(0.05, abs=1e-6) and parts["mv"] == pytest.approx(0.0, abs=1e-7)
    assert float(loss) == pytest.approx(0.05, abs=1e-6)  # Seg-VM-Net: lambda1 = lambda2 = 1
    loss, _ = compute_loss(LossConfig(margin=0.5, lambdas=(3.0, 1.0, 0.0, 0.0)), v, m, torch.tensor([0, 1]))
    assert float(loss) == pytest.approx(3 * 0.05, abs=1e-6)  # VM-Net's weights: 3 L_VM + L_MV


def test_vmcml_similarity_loss_by_hand():
    """VMCML eq. 5: max(tau, cos(v, m')) - cos(v, m). Two pairs of different classes, so
    each pair's negative is the other's music: v0 = (1, 0), m0 = (0.6, 0.8), v1 = m1 = (0, 1).
    Pair 0: max(0.2, cos(v0, m1) = 0) - 0.6 = -0.4; pair 1: max(0.2, cos(v1, m0) = 0.8) - 1 = -0.2."""
    from vmtool.models.losses import similarity_loss

    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    m = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    assert float(similarity_loss(v, m, torch.tensor([0, 1]), 0.2)) == pytest.approx(-0.3, abs=1e-6)
    # one class only: no negative to draw, no similarity term
    assert float(similarity_loss(v, m, torch.tensor([4, 4]), 0.2)) == 0.0


def test_vmcml_objective_by_hand():
    """VMCML eqs. 3, 4, 6 with prototypes W0 = (1, 0), W1 = (0, 1), s = 2, mu = 0.2,
    alpha = 0.38, beta = 2, on the pairs of the test above (classes 0 and 1).
    L_C(x) = -log(e^{s(cos_y - mu)} / (e^{s(cos_y - mu)} + sum_{j != y} e^{s cos_j}))."""
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    m = torch.tensor([[0.6, 0.8], [0.0, 1.0]])

    def lc(cos_y, cos_other, s=2.0, mu=0.2):
        return -math.log(math.exp(s * (cos_y - mu)) / (math.exp(s * (cos_y - mu)) + math.exp(s * cos_other)))

    lift_v = (lc(1.0, 0.0) + lc(1.0, 0.0)) / 2  # v0 on W0, v1 on W1
    lift_m = (lc(0.6, 0.8) + lc(1.0, 0.0)) / 2  # m0 = (0.6, 0.8): cos 0.6 with W0, 0.8 with W1
    want = lift_v + 0.38 * lift_m + 2 * (-0.3)
    net = VMNet(ModelConfig(audio_dim=2, video_dim=2, audio_layers=[2], video_layers=[2], prototypes=2))
    with torch.no_grad():
        net.prototypes.copy_(torch.eye(2))
    cfg = LossConfig(name="cosface", scale=2.0, cos_margin=0.2)  # defaults: alpha 0.38, tau 0.2, beta 2
    assert (cfg.music_weight, cfg.sim_margin, cfg.sim_weight) == (0.38, 0.2, 2.0)
    loss, parts = compute_loss(cfg, v, m, torch.arange(2), model=net, labels=torch.tensor([0, 1]))
    assert parts["lift_v"] == pytest.approx(lift_v, rel=1e-6) and parts["lift_m"] == pytest.approx(lift_m, rel=1e-6)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-6)


def test_class_labels_share_prototypes():
    from vmtool.errors import ParameterError
    from vmtool.training.loop import class_labels

    train_items = np.array([0, 1, 3])
    assert class_labels(5, train_items, None).tolist() == [0, 1, -1, 2, -1]  # one class per clip
    # items 0 and 3 use the same track (class 7): one prototype; item 4 shares item 1's class
    assert class_labels(5, train_items, np.array([7, 2, 9, 7, 2])).tolist() == [1, 0, -1, 1, 0]
    with pytest.raises(ParameterError, match="classes must be one integer per item"):
        class_labels(5, train_items, np.array([1, 2]))


def test_bce_head_is_1024_128_1():
    net = VMNet(ModelConfig(audio_dim=3, video_dim=3, audio_layers=[512], video_layers=[512], fusion_head=True))
    lin = [m for m in net.head.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(1024, 1024), (1024, 128), (128, 1)]
    old = ModelConfig.from_dict({"audio_dim": 3, "video_dim": 3, "fusion_head": True})  # a file from before
    assert old.head_layers == [128]


def test_vmnet_inter_modal_loss_is_zero_when_pairs_are_far_apart():
    e = torch.eye(4)
    cfg = LossConfig(margin=0.1, lambdas=(3.0, 1.0, 0.0, 0.0))
    loss, _ = compute_loss(cfg, e, e, torch.arange(4), v_in=torch.randn(4, 3), m_in=torch.randn(4, 3))
    assert float(loss) == pytest.approx(0.0, abs=1e-5)


def test_same_clip_pairs_are_never_negatives():
    v = _unit(4, 8)
    m = v.clone()
    m[1] = v[0]  # pair 1's music equals pair 0's: a violation only if they are different clips
    cfg = LossConfig(lambdas=(1.0, 1.0, 0.0, 0.0))
    diff, _ = compute_loss(cfg, v, m, torch.tensor([0, 1, 2, 3]))
    same, _ = compute_loss(cfg, v, m, torch.tensor([0, 0, 2, 3]))
    assert float(same) < float(diff)
    assert negatives_mask(torch.tensor([0, 0, 1])).tolist() == [[False, False, True], [False, False, True],
                                                                   [True, True, False]]


def test_hard_negatives_keep_the_worst():
    v, m = _unit(6, 8, seed=1), _unit(6, 8, seed=2)
    clips = torch.arange(6)
    cfg1 = LossConfig(lambdas=(1.0, 0.0, 0.0, 0.0), margin=1.0, hard_negatives=1)
    loss, _ = compute_loss(cfg1, v, m, clips)
    d = torch.cdist(v, m) ** 2
    hinge = (d.diagonal()[:, None] - d + 1.0).clamp(min=0)
    hinge.fill_diagonal_(-1)
    assert float(loss) == pytest.approx(float(hinge.max(1).values.clamp(min=0).mean()), rel=1e-5)
    cfg_all = LossConfig(lambdas=(1.0, 0.0, 0.0, 0.0), margin=1.0, hard_negatives=0)
    loss_all, _ = compute_loss(cfg_all, v, m, clips)
    assert float(loss_all) <= float(loss) + 1e-6


def test_structure_term_prefers_input_neighbours():
    # inputs: 0 and 1 are neighbours; embedding that keeps them close has a lower loss
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [9.0, -3.0]])
    good = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=-1)
    bad = good[[0, 2, 1, 3]]
    cfg = LossConfig(lambdas=(0.0, 0.0, 1.0, 0.0), margin=0.1)
    lg, _ = compute_loss(cfg, good, good, torch.arange(4), v_in=x, m_in=x)
    lb, _ = compute_loss(cfg, bad, bad, torch.arange(4), v_in=x, m_in=x)
    assert float(lg) < float(lb)


def test_infonce_matches_cross_entropy():
    v, m = _unit(5, 8, seed=3), _unit(5, 8, seed=4)
    cfg = LossConfig(name="infonce", temperature=0.1)
    loss, _ = compute_loss(cfg, v, m, torch.arange(5))
    logits = v @ m.T / 0.1
    t = torch.arange(5)
    want = (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
    assert float(loss) == pytest.approx(float(want), rel=1e-6)


def test_cosface_matches_the_one_hot_formula():
    x, w = _unit(5, 8, seed=5), _unit(7, 8, seed=6)
    lab = torch.tensor([0, 3, 6, 2, 2])
    want = F.cross_entropy(30 * (x @ w.T - 0.2 * F.one_hot(lab, 7)), lab)
    assert float(_cosface(x, w, lab, 30.0, 0.2)) == pytest.approx(float(want), rel=1e-6)


def test_sampled_classes_keep_every_positive():
    protos = torch.randn(100, 4)
    labels = torch.tensor([5, 99, 5, 42])
    p, lab = _sample_classes(protos, labels, 10)
    assert p.shape == (10, 4)
    assert torch.equal(p[lab], protos[labels])
    p2, lab2 = _sample_classes(protos, labels, 0)
    assert p2 is protos and lab2 is labels


def test_bce_and_cosface_need_their_parts():
    v = _unit(4, 8)
    with pytest.raises(ValueError, match="fusion head"):
        compute_loss(LossConfig(name="bce"), v, v, torch.arange(4))
    with pytest.raises(ValueError, match="prototypes"):
        compute_loss(LossConfig(name="cosface"), v, v, torch.arange(4))
    net = VMNet(ModelConfig(audio_dim=3, video_dim=3, audio_layers=[8], video_layers=[8], fusion_head=True,
                            prototypes=4))
    for name in ("bce", "cosface"):
        loss, parts = compute_loss(LossConfig(name=name), v, v, torch.arange(4), model=net, labels=torch.arange(4))
        assert math.isfinite(float(loss.detach())) and parts


# --- model files ------------------------------------------------------------------------


def _tiny_checkpoint():
    cfg = ModelConfig(audio_dim=3, video_dim=2, audio_layers=[4], video_layers=[4])
    net = VMNet(cfg)
    return {
        "config": {"model": cfg.to_dict(), "loss": LossConfig().to_dict(), "data": {"level": "clip"}, "train": {}},
        "state_dict": net.state_dict(),
        "normalisation": {"audio": {"mean": torch.zeros(3), "std": torch.ones(3)},
                          "video": {"mean": torch.zeros(2), "std": torch.ones(2)}},
    }


def test_model_file_roundtrip_is_plain_data(tmp_path):
    p = tmp_path / "m.pt"
    save_model(_tiny_checkpoint(), p)
    data = torch.load(p, weights_only=True)  # no pickled classes
    assert data["format"] == "vmtool-model" and data["version"] == 1
    m = load_model(p)
    e = m.embed("audio", np.ones((2, 3), np.float32))
    assert e.shape == (2, 4)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    info = read_model_info(p)
    assert info["kind"] == "vmtool-model" and info["parameters"] > 0 and len(info["sha256"]) == 64


def test_bad_model_files(tmp_path):
    txt = tmp_path / "notes.pt"
    txt.write_text("hello")
    with pytest.raises(FormatError, match="notes.pt: not a vmtool model file"):
        load_checkpoint(txt)
    with pytest.raises(FormatError, match="no such model file"):
        load_checkpoint(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(FormatError, match="'format' is missing"):
        load_checkpoint(other)
    future = tmp_path / "future.pt"
    d = _tiny_checkpoint()
    save_model(d, future)
    data = torch.load(future, weights_only=True)
    data["version"] = 99
    torch.save(data, future)
    with pytest.raises(FormatError, match="version 99 is not supported"):
        load_checkpoint(future)


def test_a_model_file_does_not_depend_on_its_name(tmp_path):
    """The same checkpoint written under two names (as the atomic writer's temporaries,
    which carry a pid and a random part) gives the same bytes: model files of the same
    training are reproducible."""
    import torch

    from vmtool.models.checkpoint import save_model

    data = {"weights": {"w": torch.arange(6, dtype=torch.float32)}, "note": "x"}
    a, b = tmp_path / "m.pt", tmp_path / ".vmtool-tmp-m.pt.123456.abcdefgh.part"
    save_model(data, a)
    save_model(data, b)
    assert a.read_bytes() == b.read_bytes()
