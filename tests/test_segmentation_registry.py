"""vmtool.segmentation.registry: every segmentation method declared once, everything else derived."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vmtool.errors import ParameterError
from vmtool.segment import ItemTask, SegmentConfig, segment, segment_item
from vmtool.segmentation import registry
from vmtool.segmentation.base import Segmentation


def _every(run):
    """The toy method: a boundary every ``step`` seconds."""
    step = float(run.params["step"])
    return Segmentation(np.arange(step, run.task.duration - 1e-9, step), run.task.duration)


def _check_step(v, chosen):
    return None if v > 0 else f"--step must be > 0, got {v!r}"


TOY = registry.SegmentationMethod("every", "none", "windows", "a boundary every --step seconds", "a test",
                                  _every, ("step",), min_duration=0.0)


@pytest.fixture
def local_registry(monkeypatch):
    """A copy of the registry that the test may extend."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    monkeypatch.setattr(registry, "_PARAMS", dict(registry._PARAMS))
    registry.register(TOY, registry.Param("step", 2.0, _check_step))
    return registry


def test_builtin_methods_record_the_parameters_of_earlier_releases():
    # --resume keeps a stored result only when its recorded config equals this run's:
    # the registry must record exactly what vmtool recorded before it (keys in order)
    cfg = SegmentConfig(methods=("olda",), window=4.0)
    msaf = {"labels": None, "backend": "msaf", "sample_rate": 22050, "resampler": "librosa", "boundary_times": "msaf"}
    want = {
        "foote": msaf, "sf": msaf, "olda": msaf,
        "transnet": {"threshold": 0.5},
        "beats": {"sample_rate": 22050, "resampler": "librosa"},
        "bars": {"beats_per_bar": None, "sample_rate": 22050, "resampler": "librosa", "downbeats": "librosa"},
        "fixed": {"window": 4.0},
    }
    assert registry.names() == tuple(want)
    for m, extra in want.items():
        md = 0.0 if m in ("beats", "bars") else 1.0
        assert list(cfg.params(m).items()) == [("method", m), ("version", "1"), ("min_duration", md), *extra.items()]
    assert {m: registry.get(m).modality for m in want} == {
        "foote": "audio", "sf": "audio", "olda": "audio", "transnet": "video", "beats": "audio", "bars": "audio",
        "fixed": "none"}


def test_a_registered_method_is_accepted_recorded_and_dispatched(local_registry):
    cfg = SegmentConfig(methods=("every", "fixed"), window=3.0)
    cfg.validate()
    assert cfg.params("every") == {"method": "every", "version": "1", "min_duration": 0.0, "step": 2.0}
    out = segment_item(ItemTask("x", "x", "/nonexistent.wav", 7.0, True, False), cfg)
    np.testing.assert_allclose(out["every"].boundaries, [2.0, 4.0, 6.0])
    np.testing.assert_allclose(out["fixed"].boundaries, [3.0, 6.0])
    # its own parameter comes through SegmentConfig.options and is checked by its Param
    cfg = SegmentConfig(methods=("every",), options={"step": 2.5})
    cfg.validate()
    np.testing.assert_allclose(segment_item(ItemTask("x", "x", "x.wav", 7.0, True, False), cfg)["every"].boundaries,
                               [2.5, 5.0])
    with pytest.raises(ParameterError, match="^--step must be > 0, got -1$"):
        SegmentConfig(methods=("every",), options={"step": -1}).validate()
    with pytest.raises(ParameterError, match="unknown segmentation option 'stride'"):
        SegmentConfig(methods=("every",), options={"stride": 1}).validate()


def test_a_registered_method_is_written_with_its_parameters(local_registry, tmp_path):
    from vmtool.store import open_collection
    from vmtool.synth import write_media

    wav = tmp_path / "a.wav"
    write_media(wav, audio=np.zeros(22050 * 5, dtype=np.float32), sr=22050)
    segment([wav], tmp_path / "a.h5", SegmentConfig(methods=("every",), options={"step": 1.5}))
    with open_collection(tmp_path / "a.h5") as col:
        rg = col.ragged("segmentations", "every")
        np.testing.assert_allclose(rg.rows(0), [1.5, 3.0, 4.5])
        assert rg.attrs["modality"] == "none"
        assert rg.attrs["config"] == {"method": "every", "version": "1", "min_duration": 0.0, "step": 1.5}


def test_unknown_method_and_bad_registrations_are_refused(local_registry):
    with pytest.raises(ParameterError, match=r"^unknown method 'nope'; methods: foote, sf, olda, transnet, beats, "
                                             r"bars, fixed, every$"):
        SegmentConfig(methods=("nope",)).validate()
    with pytest.raises(ParameterError, match="'every' is already registered"):
        registry.register(TOY)
    with pytest.raises(ParameterError, match="undeclared parameter 'stride'"):
        registry.register(registry.SegmentationMethod("odd", "none", "windows", "", "", _every, ("stride",)))
    with pytest.raises(ParameterError, match="modality must be audio, video or none"):
        registry.register(registry.SegmentationMethod("odd", "text", "windows", "", "", _every))


def test_labels_message_names_the_methods_that_take_labels():
    with pytest.raises(ParameterError, match=r"^--labels needs a music method \(foote, sf or olda\)$"):
        SegmentConfig(methods=("beats",), labels="fmc2d").validate()


def test_cli_choices_come_from_the_registry():
    import typer

    from vmtool.cli import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="vmtool")

    def choices(command, option):
        (p,) = [p for p in root.get_command(ctx, command).params if option in p.opts]
        return tuple(str(getattr(c, "value", c)) for c in p.type_descriptor.choices)

    assert choices("segment", "--method") == registry.names()
    assert choices("segment", "--labels") == registry.LABEL_METHODS
    assert choices("segment", "--boundary-times") == registry.BOUNDARY_TIMES
    assert choices("analyze-structure", "--segments") == ("olda", "foote", "sf")
    assert set(choices("analyze-structure", "--segments")) == set(registry.names(family="music"))


def _python(code: str) -> dict:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def test_the_registry_imports_nothing_heavy():
    got = _python("""
        import json, sys
        import vmtool.segmentation.registry as r
        r.names()
        print(json.dumps(sorted(m for m in ("numpy", "scipy", "librosa", "msaf", "torch") if m in sys.modules)))
    """)
    assert got == []


def test_a_method_is_added_and_run_without_importing_msaf():
    got = _python("""
        import json, sys
        import numpy as np
        from vmtool.segment import ItemTask, SegmentConfig, segment_item
        from vmtool.segmentation import registry
        from vmtool.segmentation.base import Segmentation

        def half(run):
            return Segmentation(np.array([run.task.duration / 2]), run.task.duration)

        registry.register(registry.SegmentationMethod("half", "none", "windows", "the middle", "a test", half))
        cfg = SegmentConfig(methods=("half",))
        cfg.validate()
        out = segment_item(ItemTask("x", "x", "x.wav", 10.0, True, False), cfg)
        print(json.dumps({"boundaries": out["half"].boundaries.tolist(), "params": cfg.params("half"),
                          "heavy": sorted(m for m in ("msaf", "librosa", "torch") if m in sys.modules)}))
    """)
    assert got == {"boundaries": [5.0], "params": {"method": "half", "version": "1", "min_duration": 1.0},
                   "heavy": []}


def test_worker_processes_run_a_registered_method(local_registry, tmp_path):
    # the pool's workers start a fresh interpreter: the registration travels with the configuration
    from vmtool.store import open_collection
    from vmtool.synth import write_media

    wavs = []
    for k, seconds in enumerate((4, 5)):
        wavs.append(tmp_path / f"w{k}.wav")
        write_media(wavs[-1], audio=np.zeros(22050 * seconds, dtype=np.float32), sr=22050)
    report = segment(wavs, tmp_path / "w.h5", SegmentConfig(methods=("every",), options={"step": 2.0}), workers=2)
    assert report.ok
    with open_collection(tmp_path / "w.h5") as col:
        rg = col.ragged("segmentations", "every")
        assert [list(rg.rows(k)) for k in range(2)] == [[2.0], [2.0, 4.0]]


@pytest.mark.parametrize("method", registry.names())
def test_recorded_parameters_give_back_the_configuration(method):
    """A catalog's recorded segmentation parameters rebuild the configuration that made them
    (vmtool.pipeline segments a media query with it), including non-default values."""
    cfg = SegmentConfig(methods=[method], threshold=0.3, beats_per_bar=3, window=4.0, labels="fmc2d",
                        min_duration=2.0, boundary_times="frame-start", downbeats="madmom")
    recorded = cfg.params(method)
    again = SegmentConfig.from_params(method, recorded)
    assert again.params(method) == recorded
    assert SegmentConfig.from_params(method, {}).params(method) == SegmentConfig(methods=[method]).params(method)
