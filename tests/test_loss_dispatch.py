"""A loss is its registry entry plus its function: one declared outside vmtool trains as it is."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vmtool.models import loss_registry as reg
from vmtool.models.checkpoint import load_checkpoint
from vmtool.synth import synth_features
from vmtool.training import DataConfig, TrainConfig, train

CALLS: list[dict] = []


@dataclasses.dataclass
class ToyConfig:
    """The toy loss's own configuration (what the model file stores under ``config.loss``)."""

    name: str = "toy"
    spread: float = 2.0

    def validate(self) -> None:
        reg.get_loss(self.name).param("spread").check(self.spread, f"--loss {self.name}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def toy_loss(cfg, v, m, clips, negatives, *, model=None, v_in=None, m_in=None, labels=None, polarity=None):
    """Mean squared distance of the matched pairs minus that of the allowed negatives (clamped)."""
    CALLS.append({"negatives": negatives.clone(), "clips": clips.clone(), "labels": labels, "v_in": v_in,
                  "head": model.head is not None, "prototypes": model.prototypes})
    d = torch.cdist(v, m) ** 2
    pos = torch.diagonal(d).mean()
    neg = (d * negatives).sum() / negatives.sum().clamp(min=1)
    return pos - torch.clamp(neg, max=cfg.spread), {"pos": pos, "neg": neg}


@pytest.fixture
def toy(monkeypatch):
    """The registry with the toy loss added through :func:`register` (restored afterwards)."""
    monkeypatch.setattr(reg, "LOSSES", dict(reg.LOSSES))
    CALLS.clear()
    return reg.register(reg.Loss("toy", "pairs together, others apart", "a test",
                                 (reg.Param("spread", 2.0, "largest distance of a negative that counts"),),
                                 config=f"{__name__}:ToyConfig", compute=f"{__name__}:toy_loss",
                                 needs=frozenset({"class_labels", "raw_inputs"})))


def test_a_registered_loss_trains_without_touching_losses_or_the_loop(toy, tmp_path):
    feats = tmp_path / "f.h5"
    synth_features(feats, 40, clip_level=True, seed=0)
    res = train(feats, tmp_path / "m.pt", data=DataConfig(), model_layers={"audio": [16, 8], "video": [16, 8]},
                loss=reg.loss_config("toy:spread=1.5"), config=TrainConfig(batch_size=16, epochs=1, val_fraction=0.2, seed=1))
    assert res.epochs == 1 and np.isfinite(res.history[-1]["loss"])
    # its parts are logged per epoch, as the built-in losses' are
    assert {"loss_pos", "loss_neg"} <= set(res.history[-1])
    assert load_checkpoint(res.path)["config"]["loss"] == {"name": "toy", "spread": 1.5}
    # the loop gave what the entry declared, and nothing else
    assert len(CALLS) == 2  # 32 training pairs, batches of 16
    for c in CALLS:
        assert torch.equal(c["negatives"], c["clips"][:, None] != c["clips"][None, :])
        assert c["labels"] is not None and c["labels"].shape == c["clips"].shape
        assert c["v_in"] is not None and c["v_in"].shape[0] == len(c["clips"])
        assert not c["head"] and c["prototypes"] is None


def test_a_registered_losss_parameters_are_checked(toy, tmp_path):
    from vmtool.errors import ParameterError

    with pytest.raises(ParameterError, match="spread must be a number >= 0"):
        reg.loss_config("toy:spread=-1")
    with pytest.raises(ParameterError, match="spread must be a number >= 0"):
        train(tmp_path / "absent.h5", tmp_path / "m.pt", data=DataConfig(), loss=ToyConfig(spread=-1.0))
    reg.get_loss("vmnet").build().validate()  # the built-in losses' configuration is not asked for spread


def test_needs_follow_the_entry_and_its_parameters():
    assert reg.get_loss("bce").needs_of(reg.get_loss("bce").build()) == {"fusion_head"}
    assert reg.get_loss("cosface").needs_of(reg.get_loss("cosface").build()) == {"prototypes", "class_labels"}
    vmnet = reg.get_loss("vmnet")
    assert vmnet.needs_of(vmnet.build()) == {"raw_inputs"}  # VM-Net's lambdas 3,1,0.2,0.2
    assert vmnet.needs_of(vmnet.build({"lambdas": (1.0, 1.0, 0.0, 0.0)})) == set()  # Seg-VM-Net's
    dpvm = reg.get_loss("dpvm")
    assert dpvm.needs_of(dpvm.build({"metric": "ppml"})) == {"polarity"}
    assert dpvm.needs_of(dpvm.build()) == set()


def test_a_bad_entry_is_refused():
    with pytest.raises(ValueError, match="unknown need"):
        reg.Loss("x", "s", "p", compute="m:f", needs=frozenset({"telepathy"}))
    with pytest.raises(ValueError, match="compute must be 'module:function'"):
        reg.Loss("x", "s", "p")
    with pytest.raises(ValueError, match="exists"):
        reg.register(dataclasses.replace(reg.get_loss("bce")))
