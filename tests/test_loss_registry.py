"""The loss registry: one declaration per loss, read by the CLI, the presets and the configs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vmtool.errors import ParameterError
from vmtool.models import loss_registry as reg


def test_the_registry_imports_neither_torch_nor_numpy():
    code = ("import sys, vmtool.models.loss_registry, vmtool.training.presets; "
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_configs_take_their_defaults_from_the_registry():
    from vmtool.models.dpvm import DPVM_PAPER_DEFAULTS, METRICS, DPVMLossConfig
    from vmtool.models.losses import LOSSES, LossConfig

    assert LOSSES == ("vmnet", "bce", "cosface", "infonce", "ppml")
    for name in reg.names():
        loss = reg.get_loss(name)
        cfg = loss.build()
        assert type(cfg) is (DPVMLossConfig if loss.model == "dpvm" else LossConfig) and cfg.name == name
        for p in loss.params:
            assert getattr(cfg, p.attr) == p.default, (name, p.name)
    # what a model file stores today: the same fields and values as before the registry
    assert LossConfig().to_dict() == {
        "name": "vmnet", "margin": 0.1, "lambdas": [3.0, 1.0, 0.2, 0.2], "hard_negatives": 0, "neighbours": 1,
        "scale": 30.0, "cos_margin": 0.2, "music_weight": 0.38, "max_classes": 4096, "sim_margin": 0.2,
        "sim_weight": 2.0, "temperature": 0.07, "polarity": "polarity", "class_label": ""}
    assert DPVMLossConfig().mu2 == DPVM_PAPER_DEFAULTS["mu2"] and METRICS == ("contrastive", "ppml")
    assert (DPVMLossConfig().margin, DPVMLossConfig().metric) == (0.5, "contrastive")


def test_a_value_may_hold_commas():
    loss, params = reg.parse_loss("vmnet:lambdas=1,1,0,0,margin=0.2,hard_negatives=100")
    assert loss.name == "vmnet" and params == {"lambdas": (1.0, 1.0, 0.0, 0.0), "margin": 0.2, "hard_negatives": 100}
    assert reg.parse_loss(" CosFace:class_label=Track ")[1] == {"class_label": "Track"}  # values keep their case
    assert reg.parse_loss("bce:")[1] == {} and reg.parse_loss("cosface:class_label=")[1] == {"class_label": ""}


def test_spec_text_is_read_back():
    loss, params = reg.parse_loss("cosface:scale=20,margin=0.3,max_classes=0,class_label=track")
    assert reg.spec_text(loss, params) == "cosface:scale=20,margin=0.3,max_classes=0,class_label=track"
    assert reg.parse_loss(reg.spec_text(loss, params)) == (loss, params)


def test_loss_config_layers_the_preset_under_the_users_keys():
    cfg = reg.loss_config("vmnet:margin=0.2", base="vmnet:margin=0.1,lambdas=1,1,0,0,hard_negatives=0")
    assert (cfg.margin, cfg.lambdas, cfg.hard_negatives) == (0.2, (1.0, 1.0, 0.0, 0.0), 0)
    # another loss of the same family keeps the preset's fields (as the per-loss options did)
    cfg = reg.loss_config("infonce", base="cosface:max_classes=0,class_label=track")
    assert (cfg.name, cfg.max_classes, cfg.class_label) == ("infonce", 0, "track")
    # a preset of the other family does not apply
    assert reg.loss_config(None, model="vmnet", base="dpvm:metric=ppml").name == "vmnet"
    assert reg.loss_config(None, model="dpvm").name == "dpvm"
    assert reg.loss_config(None, model="dpvm", base="dpvm:mu2=-1").mu2 == -1.0


def test_validate_names_the_loss_and_key():
    from vmtool.models.losses import LossConfig

    with pytest.raises(ParameterError, match=r"^--loss cosface: scale must be a positive number, got 0.0$"):
        LossConfig(name="cosface", scale=0.0).validate()
    with pytest.raises(ParameterError, match=r"^--loss vmnet: lambdas must be four numbers >= 0 like 3,1,0.2,0.2, "
                                             r"got 3.0,nan,0.2,0.2$"):
        LossConfig(lambdas=(3.0, float("nan"), 0.2, 0.2)).validate()


def test_every_preset_loss_parses_and_its_sources_name_real_settings():
    import inspect

    from vmtool.cli.train import train_cmd
    from vmtool.training.presets import PRESETS

    options = set(inspect.signature(train_cmd).parameters)
    for p in PRESETS.values():
        assert set(p.settings) <= options, p.name
        loss = reg.parse_loss(p.settings.get("loss", "vmnet"))[0]
        known = options | {f"loss.{k.name}" for k in loss.params}
        assert set(p.sources) <= known and set(p.unstated) <= known, p.name


def test_the_logged_preset_settings_can_be_typed_back():
    import shlex

    from vmtool.training.presets import PRESETS

    for p in PRESETS.values():
        words = shlex.split(p.describe())
        if "--loss" in words:
            spec = words[words.index("--loss") + 1]
            assert reg.parse_loss(spec) == reg.parse_loss(p.settings["loss"])
