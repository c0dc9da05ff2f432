"""A stored model run in numpy (no torch) gives torch's embeddings, for every network vmtool trains.

``vmtool rank MEDIA CATALOG`` embeds its query with :mod:`vmtool.models.inference` on
the CPU so that it need not import torch; the weights are read by
:mod:`vmtool.models.torchzip`, which unpickles tensors and nothing else.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vmtool.models.checkpoint import MODEL_FORMAT, MODEL_VERSION, LoadedModel, build_network
from vmtool.models.config import DPVMConfig, ModelConfig
from vmtool.models.inference import NumpyModel, numpy_model
from vmtool.models.torchzip import Unsupported, read_checkpoint

ARCHITECTURES = {
    "vmnet-stats": ModelConfig(12, 7, [16, 8], [10, 8]),
    "vmnet-attention": ModelConfig(12, 7, [16, 8], [8], aggregation="attention"),
    "vmnet-autopool": ModelConfig(12, 7, [16, 8], [10, 8], aggregation="autopool"),
    "vmnet-bce-head": ModelConfig(12, 7, [16, 8], [10, 8], fusion_head=True, head_layers=[9, 5]),
    "vmnet-prototypes": ModelConfig(12, 7, [8], [10, 8], prototypes=3),
    **{f"dpvm-{fusion}": DPVMConfig(12, 7, common=10, content_layers=[9, 6], emotion_layers=[8, 5], n_emotions=3,
                                    fusion=fusion, fusion_dim=4)
       for fusion in ("interactive", "splicing", "content", "emotion")},
}


def checkpoint_bytes(config, seed: int = 0) -> bytes:
    """A model file's bytes (as ``vmtool embed`` stores them) with random weights and statistics."""
    torch.manual_seed(seed)
    _, net = build_network(config.to_dict())
    with torch.no_grad():
        for name, t in [*net.named_parameters(), *net.named_buffers()]:
            if t.dtype.is_floating_point:
                t.copy_(torch.rand_like(t) + 0.5 if name.endswith("running_var") else torch.randn_like(t) * 0.5)
    data = {"format": MODEL_FORMAT, "version": MODEL_VERSION,
            "config": {"model": config.to_dict(), "data": {"level": "segment"}},
            "state_dict": net.state_dict(),
            "normalisation": {m: {"mean": torch.randn(d), "std": torch.rand(d) + 0.5}
                              for m, d in (("audio", config.audio_dim), ("video", config.video_dim))},
            "feature_names": {"audio": ["a"], "video": ["v"]}}
    buf = io.BytesIO()
    torch.save(data, buf)
    return buf.getvalue()


def both(blob: bytes) -> tuple[NumpyModel, LoadedModel]:
    data = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    return numpy_model(read_checkpoint(blob), Path("m"), "sha"), LoadedModel(Path("m"), data, "cpu", sha256="sha")


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_numpy_inference_equals_torch(name):
    config = ARCHITECTURES[name]
    fast, ref = both(checkpoint_bytes(config))
    assert (fast.dim, fast.level, fast.has_head) == (ref.dim, ref.level, ref.has_head)
    rng = np.random.default_rng(1)
    sequences = getattr(config, "aggregation", "stats") != "stats"
    for mod, d in (("audio", config.audio_dim), ("video", config.video_dim)):
        x = rng.normal(size=(5, 6, d) if sequences else (5, d)).astype(np.float32) * 2
        got = fast.embed(mod, x)
        assert got.dtype == np.float32 and got.shape == (5, fast.dim)
        np.testing.assert_allclose(got, ref.embed(mod, x), rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
        if sequences:  # frames past each sequence's end are masked out
            mask = np.arange(6)[None, :] < np.array([6, 1, 3, 5, 2])[:, None]
            np.testing.assert_allclose(fast.embed(mod, x, mask), ref.embed(mod, x, torch.as_tensor(mask)),
                                       rtol=0, atol=1e-6)
    if fast.has_head:
        v, m = rng.normal(size=(4, fast.dim)), rng.normal(size=(3, fast.dim))
        np.testing.assert_allclose(fast.pair_logits(v, m), ref.pair_logits(v, m), rtol=0, atol=1e-5)
        np.testing.assert_allclose(fast.pair_logits(v, m, batch=3), fast.pair_logits(v, m), rtol=0, atol=0)


def test_the_reader_gives_torchs_tensors():
    blob = checkpoint_bytes(ARCHITECTURES["vmnet-autopool"])
    mine, theirs = read_checkpoint(blob), torch.load(io.BytesIO(blob), weights_only=True)
    assert list(mine["state_dict"]) == list(theirs["state_dict"])
    for k, t in theirs["state_dict"].items():
        assert mine["state_dict"][k].dtype == t.numpy().dtype
        np.testing.assert_array_equal(mine["state_dict"][k], t.numpy())
    assert mine["config"] == theirs["config"]
    # views of a storage (a transposed tensor, a slice) come out as torch sees them
    buf = io.BytesIO()
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    torch.save({"t": base.T, "s": base[1:3, 2:], "scalar": torch.tensor(3, dtype=torch.int64)}, buf)
    got = read_checkpoint(buf.getvalue())
    np.testing.assert_array_equal(got["t"], base.T.numpy())
    np.testing.assert_array_equal(got["s"], base[1:3, 2:].numpy())
    assert got["scalar"] == 3 and got["scalar"].shape == ()


def test_the_reader_unpickles_nothing_but_tensors(tmp_path):
    """A model file is untrusted: a global other than a tensor's is refused, not called."""
    blob = checkpoint_bytes(ARCHITECTURES["vmnet-stats"])
    src = zipfile.ZipFile(io.BytesIO(blob))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n in src.namelist():
            z.writestr(n, pickle.dumps({"format": _Touches(tmp_path / "ran")}, protocol=2) if n.endswith("data.pkl")
                       else src.read(n))
    with pytest.raises(Unsupported, match="global posix.system"):
        read_checkpoint(out.getvalue())
    assert not (tmp_path / "ran").exists()
    with pytest.raises(Unsupported):
        read_checkpoint(b"not a zip archive")
    with pytest.raises(Unsupported):  # a network it does not compute
        numpy_model({"config": {"model": {"audio_dim": 1}}, "state_dict": {}}, Path("m"), "")


def test_a_view_past_its_storage_is_refused():
    from vmtool.models.torchzip import _rebuild_tensor

    storage = np.arange(6, dtype=np.float32)
    assert _rebuild_tensor(storage, 2, (2, 2), (2, 1)).tolist() == [[2, 3], [4, 5]]
    with pytest.raises(Unsupported, match="past its storage"):
        _rebuild_tensor(storage, 3, (2, 2), (2, 1))


FROZEN_CATALOG = Path(__file__).parent / "data" / "catalog-1.1.h5"


def test_a_frozen_catalogs_model_runs_in_numpy_as_in_torch():
    from vmtool.embed import load_catalog_model

    fast, ref = load_catalog_model(FROZEN_CATALOG), load_catalog_model(FROZEN_CATALOG, backend="torch")
    assert isinstance(fast, NumpyModel) and isinstance(ref, LoadedModel)
    assert (fast.sha256, fast.dim, fast.level, fast.data_config) == (ref.sha256, ref.dim, ref.level, ref.data_config)
    rng = np.random.default_rng(2)
    for mod, d in (("audio", fast.model_config.audio_dim), ("video", fast.model_config.video_dim)):
        x = rng.normal(size=(9, d)).astype(np.float32)
        np.testing.assert_allclose(fast.embed(mod, x), ref.embed(mod, x), rtol=0, atol=1e-6)


def test_a_catalog_model_that_is_not_plain_data_is_refused_unrun(tmp_path):
    import shutil

    import h5py

    from vmtool.embed import load_catalog_model
    from vmtool.errors import FormatError

    cat = tmp_path / "catalog.h5"
    shutil.copy(FROZEN_CATALOG, cat)
    marker = tmp_path / "ran"
    with h5py.File(cat, "r+") as f:
        src = zipfile.ZipFile(io.BytesIO(f["model"][()].tobytes()))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            for n in src.namelist():
                z.writestr(n, pickle.dumps({"format": _Touches(marker)}, protocol=2) if n.endswith("data.pkl")
                           else src.read(n))
        del f["model"]
        f["model"] = np.frombuffer(out.getvalue(), dtype=np.uint8)
    for backend in ("auto", "torch"):
        with pytest.raises(FormatError, match="dataset '/model' is not a readable model: UnpicklingError"):
            load_catalog_model(cat, backend=backend)
    with pytest.raises(Unsupported):
        load_catalog_model(cat, backend="numpy")
    assert not marker.exists()


class _Touches:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))
