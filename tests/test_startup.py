"""What a one-file command imports: only what it uses.

Each command runs in a fresh interpreter (this test process has imported everything
already) and reports which heavy packages it loaded. No timing here: the start-up
times themselves are measured by benchmarks/bench_startup.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vmtool

DATA = Path(__file__).parent / "data"
HEAVY = ("numpy", "h5py", "scipy", "numba", "librosa", "torch", "msaf", "matplotlib", "sklearn", "pandas", "av")

_PRELUDE = f"""
import json, sys
from typer.testing import CliRunner
from vmtool.cli import app
HEAVY = {HEAVY!r}
def loaded():
    return sorted({{m.split('.')[0] for m in sys.modules}} & set(HEAVY))
def invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, (args, res.output)
"""


def heavy_after(code: str) -> list[str]:
    """The heavy packages imported after running *code* in a new interpreter (last line)."""
    env = dict(os.environ)
    root = str(Path(vmtool.__file__).resolve().parents[1])  # this tree's vmtool, not an installed one
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-c", _PRELUDE + code + "\nprint(json.dumps(loaded()))"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_command_line_loads_no_heavy_package():
    assert heavy_after("") == []


def test_help_loads_no_heavy_package():
    assert heavy_after("invoke('--help')\ninvoke('train', '--help')\ninvoke('rank', '--help')") == []


def test_info_reads_hdf5_without_the_processing_libraries():
    assert heavy_after(f"invoke('info', {str(DATA / 'collection-1.1.h5')!r})") == ["h5py", "numpy"]


@pytest.mark.parametrize("method", [["-m", "fixed", "--window", "2"], ["-m", "beats"]])
def test_fixed_and_beat_segmentation_never_import_msaf(tmp_path, audio_files, method):
    out = tmp_path / "seg.h5"
    loaded = heavy_after(f"invoke('segment', {str(audio_files['wav'])!r}, *{method!r}, '-o', {str(out)!r}, '-q')")
    assert out.exists()
    assert not {"msaf", "matplotlib", "torch", "sklearn", "pandas"} & set(loaded), loaded


def test_msaf_import_defers_pylab_until_used():
    # msaf's 2D-FMC imports pylab for debugging plots only: importing msaf must not load
    # matplotlib, and the module msaf holds must still be the real pylab when used
    code = """
from vmtool.segmentation.music import import_msaf
import_msaf()
assert 'matplotlib' not in sys.modules, 'matplotlib imported with msaf'
from msaf.algorithms.fmc2d import xmeans
import matplotlib.pyplot
assert xmeans.plt.scatter is matplotlib.pyplot.scatter
"""
    assert "matplotlib" in heavy_after(code)


def test_msaf_import_leaves_annotations_evaluation_and_sklearn_for_later():
    # jams, pandas and the scikit-learn algorithms (2D-FMC, spectral clustering, VMO) are
    # not on the path of an in-memory segmentation; msaf's references to them still work
    code = """
from vmtool.segmentation.music import import_msaf
msaf = import_msaf()
early = {m.split('.')[0] for m in sys.modules} & {'jams', 'pandas', 'sklearn'}
assert not early, early
assert 'jams' not in sys.modules and 'msaf.algorithms.vmo' not in sys.modules
import jams
assert msaf.base.jams.JAMS is jams.JAMS and msaf.input_output.jams.load is jams.load
assert msaf.eval.pd.DataFrame.__module__.startswith('pandas')
assert msaf.algorithms.vmo.segmenter.Segmenter.__module__ == 'msaf.algorithms.vmo.segmenter'
assert msaf.algorithms.scluster.config['num_layers'] > 0
assert msaf.run.get_labels_module('fmc2d').Segmenter.__module__ == 'msaf.algorithms.fmc2d.segmenter'
"""
    assert {"pandas", "sklearn"} <= set(heavy_after(code))


def test_olda_imports_scikit_learn_but_not_pandas(tmp_path, music_video):
    # OLDA's features need librosa.segment, hence scikit-learn, which imports pandas for one
    # helper; that import is deferred, and the boundaries are written
    out = tmp_path / "seg.h5"
    loaded = heavy_after(f"invoke('segment', {str(music_video)!r}, '-m', 'olda', '-o', {str(out)!r}, '-q')")
    assert out.exists()
    assert "sklearn" in loaded and not {"pandas", "matplotlib", "torch"} & set(loaded), loaded


def test_scipy_signal_is_scipys_without_the_docstring_rewriting():
    code = """
import scipy._lib._array_api as api
rewriter = api.FunctionDoc
from vmtool._librosa import import_scipy_signal
sig = import_scipy_signal()
import scipy.signal
assert sig is scipy.signal and import_scipy_signal() is sig
assert api.FunctionDoc is rewriter  # put back for anything imported later
assert sig.savgol_filter.__doc__.startswith('Apply a Savitzky-Golay filter')
assert 'Parameters' in sig.savgol_filter.__doc__
"""
    assert "scipy" in heavy_after(code)


def test_restoring_transnet_global_state_does_not_import_torch_dynamo():
    # torch.use_deterministic_algorithms imports torch._dynamo and sympy (about a second):
    # restoring an unchanged switch must not call it
    code = """
import torch
from vmtool.features.transnet import _global_state_preserved
with _global_state_preserved(torch, False):
    pass
assert 'torch._dynamo' not in sys.modules and 'sympy' not in sys.modules
"""
    assert "torch" in heavy_after(code)


CATALOG = DATA / "catalog-1.1.h5"  # a segment-level VM-Net model stored in the catalog


def test_ranking_with_a_catalogs_mlp_model_does_not_import_torch(tmp_path, music_video):
    # the stored model runs in numpy on the CPU (vmtool.models.inference): a media query,
    # and the pair classifier, never import torch; a copy, as rank keeps CSLS terms beside its catalog
    import shutil

    CATALOG = shutil.copy(DATA / "catalog-1.1.h5", tmp_path / "catalog-1.1.h5")
    code = f"""
from vmtool.embed import load_catalog_model
from vmtool.store import open_collection
from vmtool.models.inference import NumpyModel
assert isinstance(load_catalog_model({str(CATALOG)!r}), NumpyModel)
invoke('rank', {str(music_video)!r}, {str(CATALOG)!r}, '-k', '2', '-q')
with open_collection({str(CATALOG)!r}) as c:
    item = c.ids[0]
invoke('rank', {str(CATALOG)!r} + '#' + item, {str(CATALOG)!r}, '-k', '2', '-q')
"""
    assert "torch" not in heavy_after(code)


def test_the_msaf_methods_prepare_their_imports_without_a_file():
    # what a process forked to segment media queries imports as soon as it starts
    # (vmtool.pipeline.start_segmenter): msaf and OLDA's librosa.segment, not pandas
    code = """
from vmtool.segmentation import registry
registry.get('olda').prepare({'method': 'olda', 'labels': None})
assert 'msaf.run' in sys.modules and 'librosa.segment' in sys.modules
"""
    loaded = heavy_after(code)
    assert {"msaf", "librosa", "sklearn"} <= set(loaded) and not {"pandas", "matplotlib", "torch"} & set(loaded)


def test_the_audio_handed_to_the_segmentation_process_is_made_without_librosa(music_video):
    # the command's process decodes and separates a media query's audio for the forked
    # segmentation (vmtool.pipeline._hand_over_audio): without the child's libraries
    code = f"""
from vmtool import media
from vmtool.pipeline import _hand_over_audio
from vmtool.segment import ItemTask
info = media.probe({str(music_video)!r})
task = ItemTask({str(music_video)!r}, 'mv', {str(music_video)!r}, info.duration, True, True, methods=('olda',))
_hand_over_audio(task)
assert task.audio is not None and task.hpss is not None and task.hpss[0].shape == task.audio.shape
"""
    loaded = heavy_after(code)
    assert not {"librosa", "msaf", "sklearn", "torch"} & set(loaded), loaded
