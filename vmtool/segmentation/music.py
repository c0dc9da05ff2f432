"""Music structure: section boundaries and section labels with msaf.

:class:`MsafSegmenter` adapts msaf (the Music Structure Analysis Framework, 0.1.80) to
vmtool: it is built once per item from mono audio, computes msaf's features once, and
runs any of the boundary methods :data:`MUSIC_METHODS` on them, optionally followed by
a labelling method of :data:`LABEL_METHODS`.

How msaf is driven (and why not with ``msaf.process``)
------------------------------------------------------
``msaf.process`` keeps a feature cache in the current directory, writes an
``estimations/`` folder next to the audio, keys its cache loosely (another file with the
same name and duration gets the previous file's results), and recomputes the
harmonic/percussive separation (HPSS) and the beat tracking for every feature type.
This module uses msaf's lower level instead:

- the audio is written to a WAV in a private temporary directory, and msaf's
  ``FileStruct`` points its feature, estimation and reference files into that directory,
  so nothing is ever written next to the input or into the current directory;
- the features are computed here with msaf's own feature classes, but HPSS and the beat
  tracking are computed once per item and shared by every feature type (msaf's PCP alone
  runs HPSS twice). The results are the ones msaf computes, value for value;
- the algorithms' ``Segmenter.processFlat()`` are called directly, as
  ``msaf.run.run_flat`` does, and each algorithm gets its own copy of the features: msaf
  normalises features in place (foote's min-max scaling), which in ``run_flat`` alters
  the features the labelling step then sees. Algorithms that fetch their features
  themselves (olda and scluster use PCP and MFCC whatever *feature* is) are served the
  same cached features while they run;
- the algorithms run with the BLAS/OpenMP thread pools limited to
  :data:`ALGORITHM_THREADS` (1): their matrices are small, and threads fighting for busy
  cores made them up to 10 times slower.

Times and post-processing
-------------------------
msaf's features are beat-synchronous: with beats ``b_0 < b_1 < ...``, frame 0 spans
``[0, b_0)`` and frame ``i`` spans ``[b_(i-1), b_i)``. A boundary at frame ``i`` is reported
where msaf reports it (:data:`BOUNDARY_TIMES` ``"msaf"``, the default): at msaf's
``frame_times[i]``, the frame's **end** ``b_i`` for beat-synchronous features and the
frame's start for frame-synchronous ones. ``"frame-start"`` reports every frame at its
start, one beat earlier (vmtool's convention before it followed msaf, kept for comparison). msaf's own
results also hold 0, the first beat (frame 0, which every msaf algorithm returns, not a
detection), the end of the last frame and the duration; this module drops those edges,
and the boundaries then go through :func:`~vmtool.segmentation.base.clean_boundaries`.
With ``min_duration=0`` the boundaries are msaf's own interior ones, time for time, when
the audio is the signal msaf loads (``vmtool.media.load_audio(..., resampler="librosa")``).

Glossary (as in librosa): ``sr`` is a sample rate in Hz; times are in seconds.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import os
import random
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.errors import ParameterError, VmtoolError
from vmtool.segmentation import registry as _registry
from vmtool.segmentation.base import Segmentation, check_audio, clean_boundaries

__all__ = [
    "MUSIC_METHODS",
    "LABEL_METHODS",
    "MSAF_FEATURES",
    "SegmentationError",
    "MsafSegmenter",
    "segment_music",
    "import_msaf",
    "prepare_msaf",
    "ALGORITHM_THREADS",
    "BOUNDARY_TIMES",
    "msaf_own_boundaries",
]

MUSIC_METHODS = _registry.names(family="music")
"""msaf boundary methods (declared in :mod:`vmtool.segmentation.registry`): Foote's
checkerboard novelty, Serra's structural features, McFee's ordinal LDA."""

LABEL_METHODS = _registry.LABEL_METHODS
"""msaf labelling methods: 2D Fourier magnitude coefficients, spectral clustering,
convex NMF."""

MSAF_FEATURES = ("pcp", "mfcc", "cqt", "tonnetz", "tempogram")
"""msaf feature types usable by foote, sf and the labelling methods."""

BOUNDARY_TIMES = _registry.BOUNDARY_TIMES
"""Where a boundary at a feature frame is placed (see the registry's ``BOUNDARY_TIMES``)."""

# methods that read PCP and MFCC themselves, whatever feature is asked for
_PCP_MFCC_METHODS = ("olda", "scluster")

ALGORITHM_THREADS = 1
"""BLAS/OpenMP threads while msaf's algorithms run. Their matrices are small (one row per
beat); on 2 busy cores, 2 threads made olda + fmc2d 9x slower (10.4 s against 1.2 s on a
3 minute track: OpenBLAS's eig and sklearn's k-means) for identical results."""

# msaf and its algorithms use process-wide state (numpy's and Python's global RNGs, a
# class attribute patched while an algorithm runs, the warnings filters)
_LOCK = threading.RLock()
_log = logging.getLogger(__name__)


class SegmentationError(VmtoolError):
    """A segmentation method failed on an item (exit code 1).

    The message names the method and msaf's own error.
    """


# ---------------------------------------------------------------------------------
# importing msaf quietly


class _MsafRecords(logging.Filter):
    """Drop log records emitted by msaf's own code, keeping their messages."""

    def __init__(self, sink: list[str]):
        super().__init__()
        self.sink = sink
        self.prefix = ""

    def filter(self, record: logging.LogRecord) -> bool:
        from_msaf = record.name == "msaf" or record.name.startswith("msaf.")
        if not from_msaf and self.prefix:
            from_msaf = os.path.abspath(record.pathname).startswith(self.prefix)
        if from_msaf:
            self.sink.append(f"msaf: {record.getMessage()}")
            return False
        return True


@contextlib.contextmanager
def _quiet(sink: list[str] | None = None) -> Iterator[None]:
    """Keep msaf and its dependencies off stdout; collect their log records and warnings.

    Python-level writes to stdout are captured (and logged at DEBUG level on this
    module's logger); msaf's log records and any warning are appended to *sink*.
    """
    sink = [] if sink is None else sink
    filt = _MsafRecords(sink)
    msaf_mod = sys.modules.get("msaf")
    if msaf_mod is not None and getattr(msaf_mod, "__file__", None):
        filt.prefix = os.path.dirname(os.path.abspath(msaf_mod.__file__)) + os.sep
    loggers = [logging.getLogger()] + [
        logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n == "msaf" or n.startswith("msaf.")
    ]
    for lg in loggers:
        lg.addFilter(filt)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(filt)
        for w in caught:
            msg = f"{w.category.__name__}: {w.message}"
            if msg not in sink:
                sink.append(msg)
        text = buf.getvalue().strip()
        if text:
            _log.debug("msaf wrote to stdout: %s", text)


@contextlib.contextmanager
def _thread_limit(n: int | None) -> Iterator[None]:
    """Limit the BLAS/OpenMP thread pools (process-wide) to *n* threads; None: no limit."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn, which msaf needs
        yield
        return
    with threadpool_limits(limits=int(n)):
        yield


_LIBROSA_SEGMENT_USERS = ("olda", "sf")
"""msaf boundary algorithms whose features call ``librosa.segment``."""

_DEFERRED_ALGORITHMS = ("fmc2d", "scluster", "vmo")
"""msaf algorithms imported on first use (see :func:`import_msaf`): their imports
(scikit-learn) cost more than the rest of msaf."""


def import_msaf():
    """Import msaf after making it work with current SciPy; return the module.

    msaf 0.1.80 imports ``scipy.inf`` (removed from SciPy) and foote/sf call
    ``scipy.signal.gaussian`` (moved to ``scipy.signal.windows``). Both names are put
    back, only when missing, before msaf is imported; calling this again is free.
    Nothing is printed: msaf's import-time log records and warnings are dropped.

    Raises
    ------
    SegmentationError
        msaf cannot be imported.
    """
    from vmtool._librosa import import_scipy_signal

    import_scipy_signal()  # first: quicker than a plain import (see vmtool._librosa)
    import scipy
    import scipy.signal
    import scipy.signal.windows

    if not hasattr(scipy, "inf"):
        scipy.inf = np.inf
    if not hasattr(scipy.signal, "gaussian"):
        scipy.signal.gaussian = scipy.signal.windows.gaussian
    mod = sys.modules.get("msaf")
    if mod is not None and "msaf.run" in sys.modules:
        return mod
    with _LOCK:
        try:
            with _quiet():
                from vmtool._librosa import import_librosa_beat

                import_librosa_beat()  # before msaf, which tracks beats for its features
                _defer_import("pylab")  # msaf's 2D-FMC imports it for debug plots only
                # msaf reads and writes annotation files (jams) and tabulates evaluations
                # (pandas), which the in-memory path never does; it imports every algorithm,
                # and 2D-FMC, spectral clustering and VMO bring scikit-learn, used only when they run. Their
                # stand-ins serve msaf's own references and leave sys.modules once msaf is
                # imported: anything else imports the real modules as usual.
                names = ["jams", "pandas", *(f"msaf.algorithms.{n}" for n in _DEFERRED_ALGORITHMS)]
                with _deferring(names) as stand_ins:
                    import msaf
                    import msaf.algorithms  # noqa: F401
                    import msaf.base  # noqa: F401
                    import msaf.input_output  # noqa: F401
                    import msaf.run  # noqa: F401
                for n in _DEFERRED_ALGORITHMS:  # msaf finds an algorithm as an attribute of msaf.algorithms
                    if not hasattr(msaf.algorithms, n) and f"msaf.algorithms.{n}" in stand_ins:
                        setattr(msaf.algorithms, n, stand_ins[f"msaf.algorithms.{n}"])
        except Exception as exc:  # noqa: BLE001 - any import-time failure of a dependency
            raise SegmentationError(f"msaf cannot be imported ({type(exc).__name__}: {exc})") from exc
    return msaf


@contextlib.contextmanager
def _deferring(names) -> Iterator[dict]:
    """Stand-ins (:func:`_defer_import`) for the modules *names* not imported yet, while the
    block runs; yields them by name. Modules imported in the block keep the stand-ins they
    bound (each imports the real module on first use); afterwards the unused ones leave
    ``sys.modules``, so the rest of the process imports the real modules as usual."""
    stand_ins = {n: sys.modules[n] for n in names if _defer_import(n)}
    try:
        yield stand_ins
    finally:
        for n, stand_in in stand_ins.items():
            if sys.modules.get(n) is stand_in:
                del sys.modules[n]


def _defer_import(name: str) -> bool:
    """Put a stand-in for the module or package *name* in ``sys.modules`` that imports it on first use.

    msaf's 2D-FMC labelling imports ``pylab`` (all of matplotlib.pyplot, ~40 % of msaf's
    import time) for plots it draws only in debugging branches; deferred, a segmentation
    never pays for it, and code that does use the module gets the real one: the first
    attribute read (for a package, also the import of one of its submodules) imports it
    and fills the stand-in. (:class:`importlib.util.LazyLoader` does not defer here: on
    Python 3.11 an ``import`` statement reads ``__spec__``, which loads it.) The parent
    packages of a dotted *name* are not imported. Does nothing when *name* is already
    imported or not installed; returns whether it put a stand-in.
    """
    import importlib.util
    import types

    if name in sys.modules:
        return False
    top, _, rest = name.partition(".")
    spec = importlib.util.find_spec(top)
    if spec is not None and rest:  # locate the submodule without importing its parents
        if spec.submodule_search_locations is None:
            return False
        base = os.path.join(list(spec.submodule_search_locations)[0], *rest.split("."))
        init = os.path.join(base, "__init__.py")
        if os.path.isfile(init):
            spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[base])
        elif os.path.isfile(base + ".py"):
            spec = importlib.util.spec_from_file_location(name, base + ".py")
        else:
            spec = None
    if spec is None:
        return False
    package = spec.submodule_search_locations is not None

    class _Deferred(types.ModuleType):
        def __getattr__(self, attr: str):
            if attr == "__path__" and not package:  # what the import system asks of packages: a module has none
                raise AttributeError(attr)
            with _LOCK:
                if sys.modules.get(name) is self:
                    del sys.modules[name]
                real = importlib.import_module(name)
                self.__dict__.update(real.__dict__)
            return getattr(real, attr)

    stand_in = _Deferred(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in
    return True


def _import_feature_libraries(method: str, sink: list[str]) -> None:
    """Import what *method*'s features import on first use (``librosa.segment``); what
    that import logs or warns is appended to *sink*."""
    if method in _LIBROSA_SEGMENT_USERS and "librosa.segment" not in sys.modules:
        # librosa.segment imports scikit-learn, whose sklearn.utils.fixes imports pandas
        # for one helper (0.2-0.3 s): deferred during that import only (while the
        # algorithm runs, libraries ask sys.modules whether pandas is loaded)
        with _quiet(sink), _deferring(["pandas"]):
            import librosa.segment  # noqa: F401


def prepare_msaf(method: str, labels: str | None = None) -> None:
    """Import what msaf's *method* (and the labelling *labels*) will run on, without running it.

    msaf itself (:func:`import_msaf`) and what the algorithms import on their first call
    (``librosa.segment`` with scikit-learn for olda and sf, a deferred labelling
    algorithm): about 1.5 s on an idle 2-core machine, most of a one-file query's
    segmentation. :func:`vmtool.pipeline.start_segmenter` calls it in the process it
    forks to segment media queries, as soon as that process starts. Unknown names are
    left to :meth:`MsafSegmenter.segment` to refuse.

    Raises
    ------
    SegmentationError
        msaf cannot be imported.
    """
    import_msaf()
    if method not in MUSIC_METHODS or (labels is not None and labels not in LABEL_METHODS):
        return
    import msaf.run

    with _LOCK, _quiet():
        msaf.run.get_boundaries_module(method)
        if labels:
            msaf.run.get_labels_module(labels)  # a deferred algorithm is imported on this first read
        _import_feature_libraries(method, [])


# ---------------------------------------------------------------------------------
# the segmenter


class MsafSegmenter:
    """msaf's structure analysis of one item, its features computed once.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio. Converted to float32; resampled to msaf's rate
        (``msaf.config.sample_rate``, 22,050 Hz) when *sr* differs, as ``librosa.load``
        does (soxr, ``"soxr_hq"``).
    sr : int > 0
        Sample rate of *y* in Hz.
    framesync : bool
        Use frame-synchronous features (one frame every 1024 samples, 46 ms) instead of
        msaf's default beat-synchronous ones. msaf's algorithm parameters are tuned for
        beat-synchronous features.
    path : str or os.PathLike, optional
        The file *y* came from; only used in error messages.
    hpss : (np.ndarray, np.ndarray), optional
        The harmonic and percussive parts of *y* computed already by
        :func:`vmtool.dsp.hpss` (which this class would run), e.g. by the process that
        decoded *y*; ignored when *y* is resampled here or their shapes differ from *y*'s.

    Attributes
    ----------
    sr : int
        msaf's sample rate, Hz.
    duration : float
        Seconds.
    timings : dict of str -> float
        Cumulative wall seconds per stage over this segmenter's life.

    Notes
    -----
    Every :meth:`segment` call reuses the features computed by earlier calls: each
    feature type (PCP, MFCC, ...) is computed once, and HPSS and the beat tracking once
    for all feature types. A segmentation's ``timings["features"]`` is the time that
    call spent computing features (0.0 when all were cached); ``timings["decode"]``
    (decoding, resampling and writing the temporary WAV) is charged to the first call.

    The temporary directory is removed by :meth:`close` (or when the segmenter is
    used as a context manager, or garbage-collected).

    Examples
    --------
    >>> from vmtool.synth import synth_music
    >>> y, truth = synth_music(duration=90.0, sections="ABAC")
    >>> with MsafSegmenter(y, truth.sr) as seg:  # doctest: +SKIP
    ...     olda = seg.segment("olda", labels="fmc2d")
    ...     foote = seg.segment("foote")  # features are not computed again
    """

    def __init__(
        self,
        y: np.ndarray,
        sr: int,
        *,
        framesync: bool = False,
        path: str | os.PathLike | None = None,
        hpss: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.path = os.fspath(path) if path is not None else None
        y, sr = check_audio(y, sr)
        msaf = import_msaf()
        t0 = time.perf_counter()
        y = y.astype(np.float32, copy=False)
        self.sr = int(msaf.config.sample_rate)
        if int(sr) != self.sr:
            import librosa

            y = librosa.resample(y, orig_sr=int(sr), target_sr=self.sr).astype(np.float32, copy=False)
        self._y = y
        self._given_hpss = None
        if hpss is not None and int(sr) == self.sr and all(np.shape(a) == y.shape for a in hpss):
            self._given_hpss = tuple(hpss)
        self.duration = len(y) / float(self.sr)
        self.framesync = bool(framesync)
        self._tmp = tempfile.TemporaryDirectory(prefix="vmtool-msaf-")
        tmp = Path(self._tmp.name)
        wav = tmp / "audio.wav"
        import soundfile

        # float WAV: no clipping of decoded audio above 1.0. msaf reads it only if one of
        # its code paths asks for a feature this class has not computed.
        soundfile.write(str(wav), y, self.sr, subtype="FLOAT")
        fs = msaf.input_output.FileStruct(str(wav))
        fs.features_file = str(tmp / "features.json")
        fs.est_file = str(tmp / "estimations.jams")
        fs.ref_file = str(tmp / "references.jams")
        self._fs = fs
        self._objs: dict[str, Any] = {}  # feature id -> msaf Features object, computed
        self._shared: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._n_computed: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        self._pending: dict[str, float] = {}
        # resampling and writing the WAV; charged to "decode" when built from a file
        self._add_time("prepare", time.perf_counter() - t0)

    # -- construction from a file and life cycle ------------------------------------

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, framesync: bool = False) -> MsafSegmenter:
        """Decode a media file's audio at msaf's rate and build a segmenter.

        Parameters
        ----------
        path : path
            Any media file with an audio stream that :mod:`vmtool.media` can decode.
        framesync : bool
            See :class:`MsafSegmenter`.

        Raises
        ------
        VmtoolError, MediaError
            The file is missing, not media, has no audio stream, or is damaged.
        """
        from vmtool import media

        msaf = import_msaf()
        t0 = time.perf_counter()
        # the signal msaf itself loads (librosa.load): FFmpeg's resampler moves the beats
        y = media.load_audio(path, int(msaf.config.sample_rate), resampler="librosa")
        decode_s = time.perf_counter() - t0
        seg = cls(y, int(msaf.config.sample_rate), framesync=framesync, path=path)
        seg._add_time("decode", decode_s)
        seg._pending["decode"] = decode_s + seg.timings.get("prepare", 0.0)
        return seg

    def close(self) -> None:
        """Remove the temporary directory and drop the cached features."""
        self._objs.clear()
        self._shared = None
        self._tmp.cleanup()

    def __enter__(self) -> MsafSegmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"MsafSegmenter(duration={self.duration:.1f} s, sr={self.sr}, framesync={self.framesync}, "
            f"features={sorted(self._objs)})"
        )

    # -- bookkeeping -----------------------------------------------------------------

    def _add_time(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    @property
    def computed_features(self) -> dict[str, int]:
        """How many times each feature type (and ``"hpss+beats"``) was computed: 1 each."""
        return dict(self._n_computed)

    def _where(self) -> str | None:
        return self.path

    # -- features --------------------------------------------------------------------

    def _shared_stage(self, obj) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """HPSS and beats, computed once with msaf's own methods."""
        if self._shared is None:
            # msaf's compute_HPSS is librosa.effects.hpss(audio): vmtool.dsp.hpss gives the same
            # numbers with faster median filters and one pass for the masks (HPSS was about
            # two thirds of the features' time before)
            if self._given_hpss is not None:  # computed by vmtool.dsp.hpss from this very signal
                harmonic, percussive = self._given_hpss
            else:
                from vmtool.dsp import hpss

                harmonic, percussive = hpss(obj._audio)
            obj._audio_harmonic, obj._audio_percussive = harmonic, percussive
            beat_times, beat_frames = obj.estimate_beats()
            self._shared = (harmonic, percussive, np.asarray(beat_times), np.asarray(beat_frames))
            self._n_computed["hpss+beats"] = self._n_computed.get("hpss+beats", 0) + 1
        return self._shared

    def _compute(self, fid: str):
        """Compute feature *fid* exactly as msaf's ``Features._compute_all_features``,
        sharing audio, HPSS and beats between feature types."""
        import msaf.base
        from msaf.base import FeatureTypes

        if fid in self._objs:
            return self._objs[fid]
        select = msaf.base.Features.__dict__["select_features"].__func__
        obj = select(msaf.base.Features, fid, self._fs, False, self.framesync)
        obj._audio = self._y
        obj.dur = self.duration
        harmonic, percussive, beat_times, beat_frames = self._shared_stage(obj)
        obj._audio_harmonic, obj._audio_percussive = harmonic, percussive
        feat_type = obj.feat_type
        obj.feat_type = FeatureTypes.framesync
        try:
            if fid == "tonnetz":
                # msaf's Tonnetz builds its own PCP object (which would recompute it)
                import librosa

                pcp = self._compute("pcp")._framesync_features
                frames = librosa.feature.tonnetz(chroma=pcp.T).T
            else:
                # PCP's compute_features runs HPSS again: hand it the shared result
                obj.compute_HPSS = lambda: (harmonic, percussive)
                try:
                    frames = obj.compute_features()
                finally:
                    del obj.compute_HPSS
        finally:
            obj.feat_type = feat_type
        obj._framesync_features = np.asarray(frames)
        obj._compute_framesync_times()
        obj._est_beats_times, obj._est_beats_frames = beat_times, beat_frames
        obj._ann_beats_times, obj._ann_beats_frames = None, None
        obj._est_beatsync_features, obj._est_beatsync_times = obj.compute_beat_sync_features(
            beat_frames, beat_times, True
        )
        obj._ann_beatsync_features, obj._ann_beatsync_times = None, None
        obj._features = obj._framesync_features if self.framesync else obj._est_beatsync_features
        self._objs[fid] = obj
        self._n_computed[fid] = self._n_computed.get(fid, 0) + 1
        return obj

    def _fresh(self, fid: str):
        """A copy of feature *fid*'s msaf object whose arrays an algorithm may modify."""
        obj = self._compute(fid)
        c = copy.copy(obj)
        for name in ("_framesync_features", "_est_beatsync_features", "_framesync_times", "_est_beatsync_times"):
            v = getattr(obj, name)
            setattr(c, name, None if v is None else np.array(v, copy=True))
        c._features = c._framesync_features if self.framesync else c._est_beatsync_features
        return c

    def features(self, feature: str = "pcp") -> tuple[np.ndarray, np.ndarray]:
        """msaf's feature matrix of this item (computed on first use).

        Parameters
        ----------
        feature : str
            One of :data:`MSAF_FEATURES`.

        Returns
        -------
        F : np.ndarray [shape=(n_frames, d)]
            Beat-synchronous (or frame-synchronous) features, a copy.
        starts : np.ndarray [shape=(n_frames,)]
            Start time of each frame in seconds (the first is 0).

        Raises
        ------
        SegmentationError
            The audio is shorter than msaf's analysis window, or msaf failed.
        """
        _check_feature(feature)
        with _LOCK:
            self._ensure([feature])
            obj = self._fresh(feature)
            return obj._features, self._frame_starts(obj)

    def _too_short(self) -> bool:
        import msaf

        return len(self._y) < int(msaf.config.n_fft)

    def _ensure(self, fids: list[str], sink: list[str] | None = None, what: str = "") -> float:
        """Compute the missing features among *fids*; return the seconds spent.

        What msaf and librosa log or warn meanwhile is appended to *sink*.
        """
        missing = [f for f in dict.fromkeys(fids) if f not in self._objs]
        if not missing:
            return 0.0
        if self._too_short():
            raise SegmentationError(
                f"{what + ': ' if what else ''}audio too short for msaf features ({len(self._y)} samples)",
                self._where(),
            )
        t0 = time.perf_counter()
        sink = [] if sink is None else sink
        try:
            with _quiet(sink):
                for fid in missing:
                    self._compute(fid)
        except VmtoolError:
            raise
        except Exception as exc:  # noqa: BLE001 - msaf/librosa failures on odd audio
            raise SegmentationError(
                f"{what + ': ' if what else ''}msaf {'/'.join(missing)} features failed on "
                f"{self.duration:.1f} s of audio ({type(exc).__name__}: {exc})",
                self._where(),
            ) from exc
        dt = time.perf_counter() - t0
        self._add_time("features", dt)
        return dt

    def _frame_times(self, obj, convention: str) -> np.ndarray:
        """Time of each feature frame under *convention* (see :data:`BOUNDARY_TIMES`)."""
        if convention == "frame-start":
            return self._frame_starts(obj)
        n = obj._features.shape[0]
        # msaf's Features.frame_times: the frame-synchronous times, or the beat times
        # followed by the last frame-synchronous time (compute_beat_sync_features)
        t = obj._framesync_times if self.framesync else obj._est_beatsync_times
        t = np.asarray(t, dtype=np.float64)[:n]
        if len(t) < n:  # pragma: no cover - defensive
            t = np.concatenate([t, np.full(n - len(t), self.duration)])
        return t

    def _frame_starts(self, obj) -> np.ndarray:
        """Start time of each feature frame, seconds."""
        n = obj._features.shape[0]
        if self.framesync:
            return np.asarray(obj._framesync_times[:n], dtype=np.float64)
        # beat-synchronous frames (librosa.util.sync with pad=True): frame 0 spans
        # [0, first beat), frame i spans [beat i-1, beat i) (0-based beats)
        beats = np.asarray(obj._est_beats_times, dtype=np.float64)
        starts = np.concatenate([[0.0], beats])[:n]
        if len(starts) < n:  # pragma: no cover - defensive
            starts = np.concatenate([starts, np.full(n - len(starts), self.duration)])
        return starts

    @contextlib.contextmanager
    def _serving(self) -> Iterator[None]:
        """While an algorithm runs, msaf's ``Features.select_features`` for this item's
        file returns fresh copies of the cached features (olda and scluster fetch PCP and
        MFCC themselves); any other call goes to msaf's own method."""
        import msaf.base

        cls = msaf.base.Features
        original = cls.__dict__["select_features"]
        me = self

        def select_features(klass, features_id, file_struct, annot_beats, framesync):
            if file_struct is me._fs and not annot_beats and bool(framesync) == me.framesync:
                return me._fresh(features_id)
            return original.__func__(klass, features_id, file_struct, annot_beats, framesync)

        cls.select_features = classmethod(select_features)
        try:
            yield
        finally:
            cls.select_features = original

    # -- segmentation ----------------------------------------------------------------

    def segment(
        self,
        method: str = "foote",
        *,
        labels: str | None = None,
        min_duration: float = 1.0,
        feature: str = "pcp",
        config: Mapping[str, Any] | None = None,
        seed: int = 0,
        boundary_times: str = "msaf",
    ) -> Segmentation:
        """Find section boundaries (and optionally section labels) with one msaf method.

        Parameters
        ----------
        method : str
            One of :data:`MUSIC_METHODS`: ``"foote"``, ``"sf"`` or ``"olda"``.
        labels : str, optional
            One of :data:`LABEL_METHODS` (``"fmc2d"``, ``"scluster"``, ``"cnmf"``) to label
            the segments; None for boundaries only.
        min_duration : float >= 0
            Shortest segment in seconds (see
            :func:`~vmtool.segmentation.base.clean_boundaries`).
        feature : str
            msaf feature type used by foote, sf and the labelling methods, one of
            :data:`MSAF_FEATURES`. olda (and scluster) always use PCP and MFCC.
        config : mapping, optional
            Overrides of the msaf algorithms' parameters, by msaf's names (e.g.
            ``{"M_gaussian": 16, "L_peaks": 16}`` for foote, ``{"k": 3}`` for fmc2d).
            Unknown names are refused.
        seed : int
            Seed of numpy's and Python's global RNGs while the algorithms run (sklearn's
            k-means in fmc2d and scluster draws from numpy's, the k-means initialisation
            of cnmf from Python's ``random``); the callers' RNG states are restored
            afterwards.
        boundary_times : {"msaf", "frame-start"}
            Where a boundary at a feature frame is placed (:data:`BOUNDARY_TIMES`):
            ``"msaf"`` at msaf's frame time, as ``msaf.process`` reports it (for
            beat-synchronous features the beat that ends the frame); ``"frame-start"``
            at the frame's start, one beat earlier.

        Returns
        -------
        Segmentation
            ``boundaries`` in seconds; ``labels`` (int64, one per segment, numbered
            0, 1, 2... in order of first appearance) when *labels* is given;
            ``curve``: Foote's checkerboard novelty of the item's *feature* features
            (for ``foote`` the very curve whose peaks are the boundaries; for the other
            methods the same computation with foote's parameters, for plots),
            resampled to ``curve_rate`` = 22050 / 1024 Hz (about 21.5 Hz);
            ``timings`` with ``features``, ``algorithm``, ``curve`` (and ``decode``
            on the first call of a segmenter built by :meth:`from_path`); ``extra``
            with ``method``, ``labels``, ``feature``, ``framesync``, ``n_frames``
            (feature frames), ``boundary_times`` (the convention), ``frame_times``
            (the time of each frame under that convention, s: the boundaries are among
            them) and ``warnings`` (what msaf and librosa logged or warned, e.g. a track
            too short).

        Raises
        ------
        ParameterError
            An unknown method, labelling, feature or config key, or a negative
            *min_duration*.
        SegmentationError
            msaf's features or algorithm failed on this audio (the message names the
            method and msaf's error).

        Notes
        -----
        Audio shorter than msaf's analysis window (``msaf.config.n_fft``, 4096 samples,
        0.19 s) is not analysed: one segment, and a note in ``extra["warnings"]``.
        With fewer than ``msaf.config.minimum_frames`` (10) feature frames (about 5 s of
        music at 120 BPM, or silence, where no beat is found) msaf does not run; the
        result is one segment and a note in ``extra["warnings"]``. foote needs more
        beats than its kernel (``M_gaussian`` = 66 beats, 33 s at 120 BPM) to find
        anything; olda looks for segments of 10 to 45 s.
        """
        if method not in MUSIC_METHODS:
            raise ParameterError(f"unknown music method {method!r}; use {', '.join(MUSIC_METHODS)}")
        if labels is not None and labels not in LABEL_METHODS:
            raise ParameterError(f"unknown labelling method {labels!r}; use {', '.join(LABEL_METHODS)}")
        _check_feature(feature)
        if boundary_times not in BOUNDARY_TIMES:
            raise ParameterError(
                f"unknown boundary_times {boundary_times!r}; use {', '.join(BOUNDARY_TIMES)}"
            )
        try:
            md_ok = math.isfinite(float(min_duration)) and float(min_duration) >= 0
        except (TypeError, ValueError):
            md_ok = False
        if not md_ok:
            raise ParameterError(f"min_duration must be >= 0, got {min_duration!r}")
        import msaf
        import msaf.input_output
        import msaf.run

        with _quiet():  # imports the algorithms on first use (import_msaf defers some)
            cfg_base = msaf.input_output.get_configuration(feature, False, self.framesync, method, labels)
        overrides = dict(config or {})
        known = sorted(k for k in cfg_base if k not in ("annot_beats", "feature", "framesync"))
        unknown = sorted(set(overrides) - set(known), key=str)
        if unknown:
            raise ParameterError(
                f"unknown msaf parameter(s) {', '.join(map(repr, unknown))} for {method}"
                f"{'+' + labels if labels else ''}; known: {', '.join(known)}"
            )
        cfg_base.update(overrides)
        cfg_base["hier"] = False

        needed = [feature]
        if method in _PCP_MFCC_METHODS or labels in _PCP_MFCC_METHODS:
            needed += ["pcp", "mfcc"]
        what = method + (f"+{labels}" if labels else "")
        sink: list[str] = []
        with _LOCK:
            if self._too_short():
                # librosa's HPSS returns NaN (not always) for such short input
                sink.append(
                    f"audio too short for msaf: {len(self._y)} samples, fewer than its "
                    f"{msaf.config.n_fft}-sample analysis window; one segment"
                )
                feat_s, n_frames, ftimes = 0.0, 0, np.zeros(0)
            else:
                feat_s = self._ensure(needed, sink, what)
                obj = self._objs[feature]
                n_frames = int(obj._features.shape[0])
                ftimes = self._frame_times(obj, boundary_times)
            t0 = time.perf_counter()
            if n_frames == 0 and self._too_short():
                idxs = np.array([0, 0])
                seg_labels = np.zeros(1) if labels else None
            elif n_frames <= int(msaf.config.minimum_frames):
                sink.append(
                    f"msaf: {n_frames} feature frames (at most {msaf.config.minimum_frames}): "
                    "track too short or no beats found; one segment"
                )
                idxs = np.array([0, max(n_frames - 1, 0)])
                seg_labels = np.zeros(1) if labels else None
            else:
                if method == "foote":
                    m = int(cfg_base["M_gaussian"]) + int(cfg_base["M_gaussian"]) % 2
                    if n_frames < m:
                        sink.append(
                            f"foote: {n_frames} feature frames, fewer than its kernel (M_gaussian={m}): "
                            "no boundary can be found (a smaller M_gaussian can be passed in config)"
                        )
                idxs, seg_labels = self._run(method, labels, cfg_base, sink, seed, what)
            algo_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            curve, rate = self._curve(feature, ftimes, overrides if method == "foote" else None, sink)
            curve_s = time.perf_counter() - t1
        self._add_time("algorithm", algo_s)
        self._add_time("curve", curve_s)

        idxs = np.asarray(idxs, dtype=np.int64)
        times = ftimes[np.clip(idxs[1:-1], 0, n_frames - 1)] if len(idxs) > 2 else np.zeros(0)
        lab_in = None
        if labels is not None and seg_labels is not None:
            lab_in = np.asarray(seg_labels, dtype=np.float64).reshape(-1)
            if len(lab_in) != len(times) + 1:  # pragma: no cover - msaf keeps them aligned
                raise SegmentationError(
                    f"{what}: msaf returned {len(lab_in)} labels for {len(times) + 1} segments", self._where()
                )
            lab_in = np.rint(lab_in).astype(np.int64)
        try:
            b, lab = clean_boundaries(times, self.duration, min_duration=float(min_duration), labels=lab_in)
        except ParameterError as exc:  # pragma: no cover - duplicates with labels
            raise SegmentationError(f"{what}: {exc}", self._where()) from exc
        if lab is not None:
            lab = _relabel(lab)
        timings = {"features": feat_s, "algorithm": algo_s, "curve": curve_s}
        for stage, secs in self._pending.items():
            timings[stage] = secs
        self._pending = {}
        return Segmentation(
            boundaries=b,
            duration=self.duration,
            labels=lab,
            curve=curve,
            curve_rate=rate,
            timings=timings,
            extra={
                "method": method,
                "labels": labels,
                "feature": feature,
                "framesync": self.framesync,
                "n_frames": n_frames,
                "boundary_times": boundary_times,
                "frame_times": ftimes,
                "warnings": sink,
            },
        )

    def _run(self, method, labels, cfg, sink, seed, what):
        """Run msaf's boundary (and labelling) Segmenter as ``msaf.run.run_flat`` does."""
        import msaf.run

        bounds_module = msaf.run.get_boundaries_module(method)
        labels_module = msaf.run.get_labels_module(labels) if labels else None
        state, py_state = np.random.get_state(), random.getstate()
        np.random.seed(int(seed) % 2**32)
        random.seed(int(seed))
        stage = method
        try:
            _import_feature_libraries(method, sink)
            with _quiet(sink), self._serving(), _thread_limit(ALGORITHM_THREADS):
                cfg_b = dict(cfg, features=self._fresh(cfg["feature"]))
                S = bounds_module.Segmenter(self._fs, in_labels=[], **cfg_b)
                idxs, est_labels = S.processFlat()
                idxs = np.asarray(idxs, dtype=np.int64)
                if labels_module is not None:
                    stage = labels
                    if len(idxs) == 2:
                        est_labels = np.array([0])
                    else:
                        cfg_l = dict(cfg, features=self._fresh(cfg["feature"]))
                        S = labels_module.Segmenter(self._fs, in_bound_idxs=idxs, **cfg_l)
                        est_labels = S.processFlat()[1]
        except VmtoolError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever msaf raises, named and wrapped
            raise SegmentationError(
                f"msaf {stage} failed on {self.duration:.1f} s of audio ({type(exc).__name__}: {exc})",
                self._where(),
            ) from exc
        finally:
            np.random.set_state(state)
            random.setstate(py_state)
        return idxs, (est_labels if labels else None)

    def _curve(self, feature, starts, overrides, sink) -> tuple[np.ndarray | None, float]:
        """Foote's checkerboard novelty of *feature*, on a uniform grid; the value of
        frame ``i`` is placed at ``starts[i]`` (the frame times boundaries use)."""
        rate = self.sr / float(_hop_size())
        n = max(1, int(math.floor(self.duration * rate)) + 1)
        if len(starts) < 2:  # no beat found: a flat curve
            return np.zeros(n, dtype=np.float32), rate
        try:
            from msaf.algorithms import foote
            from msaf.algorithms.foote import segmenter as fs
            import msaf.utils

            p = dict(foote.config)
            if overrides:
                p.update({k: v for k, v in overrides.items() if k in p})
            m = int(p["M_gaussian"])
            m += m % 2
            with _quiet(sink if overrides is not None else []):
                F = self._fresh(feature)._features
                F = msaf.utils.normalize(F, norm_type=p["bound_norm_feats"])
                F = fs.median_filter(F, M=int(p["m_median"]))
                nc = fs.compute_nc(fs.compute_ssm(F), fs.compute_gaussian_krnl(m))
            nc = np.nan_to_num(np.asarray(nc, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        except Exception as exc:  # noqa: BLE001 - the curve is an extra; never fail for it
            sink.append(f"novelty curve not computed ({type(exc).__name__}: {exc})")
            return None, math.nan
        grid = np.arange(n) / rate
        return np.interp(grid, starts[: len(nc)], nc[: len(starts)]).astype(np.float32), rate


def _hop_size() -> int:
    import msaf

    return int(msaf.config.hop_size)


def _check_feature(feature: str) -> None:
    if feature not in MSAF_FEATURES:
        raise ParameterError(f"unknown msaf feature {feature!r}; use {', '.join(MSAF_FEATURES)}")


def _relabel(lab: np.ndarray) -> np.ndarray:
    """Renumber labels 0, 1, 2... in order of first appearance."""
    mapping: dict[int, int] = {}
    return np.asarray([mapping.setdefault(int(v), len(mapping)) for v in lab], dtype=np.int64)


def msaf_own_boundaries(
    path: str | os.PathLike,
    methods: tuple[str, ...] = MUSIC_METHODS,
    *,
    feature: str = "pcp",
) -> dict[str, np.ndarray]:
    """Boundaries of each method as msaf computes them itself on an audio file: the reference.

    msaf loads the file with ``librosa.load``, computes its features (its own HPSS, its
    feature file, in a temporary directory) and runs ``msaf.run.run_algorithms`` as
    ``msaf.process`` does. Of msaf's times, 0, the first beat (frame 0, returned by every
    algorithm), the last frame's end and the duration are dropped, as
    :meth:`MsafSegmenter.segment` drops them: with ``min_duration=0`` and the default
    ``boundary_times`` the two must agree. Slower than :class:`MsafSegmenter` (features
    computed per method, HPSS twice); for checks and benchmarks.

    Parameters
    ----------
    path : path
        An audio file libsndfile reads (WAV, FLAC, Ogg, MP3).
    methods : tuple of str
        Among :data:`MUSIC_METHODS`.
    feature : str
        msaf feature type of foote and sf.

    Returns
    -------
    dict of str -> np.ndarray [shape=(k,), dtype=float64]
        Interior boundaries in seconds, per method.
    """
    msaf = import_msaf()
    from msaf.base import Features

    _check_feature(feature)
    out: dict[str, np.ndarray] = {}
    with _LOCK, tempfile.TemporaryDirectory(prefix="vmtool-msaf-own-") as tmp:
        fs = msaf.input_output.FileStruct(os.fspath(path))
        fs.features_file, fs.est_file, fs.ref_file = (os.path.join(tmp, n) for n in ("f.json", "e.jams", "r.jams"))
        with _quiet():
            for method in methods:
                if method not in MUSIC_METHODS:
                    raise ParameterError(f"unknown music method {method!r}; use {', '.join(MUSIC_METHODS)}")
                cfg = msaf.input_output.get_configuration(feature, False, False, method, None)
                cfg["features"] = Features.select_features(feature, fs, False, False)
                cfg["hier"] = False
                times, _ = msaf.run.run_algorithms(fs, method, None, cfg)
                ft = np.asarray(cfg["features"].frame_times, dtype=np.float64)
                t = np.asarray(times, dtype=np.float64)
                out[method] = t[(t > ft[0] + 1e-9) & (t < ft[-1] - 1e-9)] if ft.size else np.zeros(0)
    return out


def segment_music(
    source: str | os.PathLike | np.ndarray,
    method: str = "olda",
    *,
    sr: int | None = None,
    labels: str | None = None,
    min_duration: float = 1.0,
    feature: str = "pcp",
    framesync: bool = False,
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    boundary_times: str = "msaf",
) -> Segmentation:
    """One msaf method on one item: a media file or an audio array.

    To run several methods on the same item, build one :class:`MsafSegmenter` and call
    its :meth:`~MsafSegmenter.segment` per method: the features are then computed once.

    Parameters
    ----------
    source : path or np.ndarray [shape=(n,)]
        A media file with audio, or mono audio (then *sr* is required).
    method, labels, min_duration, feature, config, seed, boundary_times
        See :meth:`MsafSegmenter.segment`.
    sr : int, optional
        Sample rate of *source* when it is an array.
    framesync : bool
        See :class:`MsafSegmenter`.

    Returns
    -------
    Segmentation
    """
    if isinstance(source, np.ndarray):
        if sr is None:
            raise ParameterError("sr is required when source is an audio array")
        seg = MsafSegmenter(source, sr, framesync=framesync)
    else:
        seg = MsafSegmenter.from_path(source, framesync=framesync)
    with seg:
        return seg.segment(method, labels=labels, min_duration=min_duration, feature=feature, config=config, seed=seed,
                           boundary_times=boundary_times)
