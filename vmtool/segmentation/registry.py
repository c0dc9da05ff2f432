"""The segmentation methods of ``vmtool segment``, each declared once.

A :class:`SegmentationMethod` says what a method is called, which input it reads
(``modality``), which parameters are recorded with its results (and their defaults), where
it comes from (paper or library), and which *runner* computes it for one item. Everything
else is derived from this registry: :class:`vmtool.segment.SegmentConfig`'s validation
and recorded parameters, the dispatch of :func:`vmtool.segment.segment_item`, the
choices and help of ``vmtool segment``, ``analyze-structure --segments`` and
``--query-segments``, the shell completions, and the check that ``docs/methods.md``
documents every method.

Adding a method
---------------
Write its runner here (a function of one :class:`Run`, returning a
:class:`~vmtool.segmentation.base.Segmentation`; it imports what it needs inside the
call) and add a :class:`SegmentationMethod` to :data:`_BUILTIN`; a parameter of its own is
a :class:`Param` of :data:`_PARAMS` (its values come from ``SegmentConfig.options`` until
``vmtool segment`` gets an option for it). Code outside vmtool calls :func:`register`.
Then document the method in ``docs/methods.md`` (``tests/test_docs.py`` checks it) and
regenerate ``docs/cli.md`` and ``completions/``.

This module imports nothing but the standard library and :mod:`vmtool.errors`: the CLI
reads its choices at start-up (``vmtool --help`` and completion stay fast). Runners load
librosa, msaf, madmom or torch when they run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmtool.errors import ParameterError

__all__ = [
    "parse_spec",
    "AUDIO_SR",
    "AUDIO_RESAMPLER",
    "LABEL_METHODS",
    "BOUNDARY_TIMES",
    "DOWNBEATS",
    "Param",
    "Companion",
    "SegmentationMethod",
    "Run",
    "register",
    "get",
    "names",
    "users",
    "param",
    "params",
    "companion",
]

AUDIO_SR = 22050
"""Sample rate of the decoded audio (msaf's and librosa's default): one decode serves every
audio method."""
AUDIO_RESAMPLER = "librosa"
"""The audio is decoded as ``librosa.load`` decodes it, the signal msaf's own pipeline
analyses (:func:`vmtool.media.load_audio`)."""

LABEL_METHODS = ("fmc2d", "scluster", "cnmf")
"""msaf labelling methods: 2D Fourier magnitude coefficients, spectral clustering,
convex NMF."""

BOUNDARY_TIMES = ("msaf", "frame-start")
"""Where a boundary at a feature frame is placed: ``"msaf"``, at msaf's frame time (the
end of a beat-synchronous frame, the start of a frame-synchronous one), as
``msaf.process`` reports it; ``"frame-start"``, at the start of the frame (one beat
earlier for beat-synchronous features)."""

DOWNBEATS = ("librosa", "madmom")
"""Downbeat trackers of ``bars``: vmtool's estimator on librosa's beats, or madmom's RNN
downbeat tracker (:mod:`vmtool.segmentation.downbeats`, an optional extra)."""


# ---------------------------------------------------------------------------------
# parameters


@dataclass(frozen=True)
class Param:
    """A parameter recorded with a method's results.

    Attributes
    ----------
    name : str
        Key in the recorded ``config`` and attribute (or ``options`` key) of
        :class:`vmtool.segment.SegmentConfig`.
    default : object
        Its value when not given. A *fixed* parameter always has this value (it records
        how the method ran: the backend, the decoding rate).
    check : callable, optional
        ``check(value, chosen[, option])`` returns an error message or None; *chosen*
        lists the configured methods that record this parameter (empty when none does);
        *option*, when the check takes it, is how the user wrote the parameter, for the
        message (default: the ``vmtool segment`` option, ``--window``; ``window`` in
        ``rank --query-segments fixed:window=5``).
    fixed : bool
        Not settable: recorded only.
    """

    name: str
    default: Any = None
    check: Callable[..., str | None] | None = None
    fixed: bool = False


def _finite_positive(v) -> bool:
    return v is not None and v > 0 and math.isfinite(v)


def _check_window(v, chosen, option="--window"):
    return f"method {chosen[0]!r} needs {option} SECONDS > 0" if chosen and not _finite_positive(v) else None


def _check_threshold(v, chosen, option="--threshold"):
    return None if 0.0 < v < 1.0 else f"{option} must be between 0 and 1, got {v!r}"


def _check_beats_per_bar(v, chosen, option="--beats-per-bar"):
    return None if v is None or 1 <= v <= 16 else f"{option} must be between 1 and 16, got {v!r}"


def _check_labels(v, chosen, option="--labels"):
    if v is None:
        return None
    if v not in LABEL_METHODS:
        return f"unknown labelling {v!r}; use {', '.join(LABEL_METHODS)}"
    if not chosen:
        *head, last = users("labels")
        return f"{option} needs a music method ({', '.join(head)} or {last})" if head else \
            f"{option} needs the method {last}"
    return None


def _check_min_duration(v, chosen, option="--min-duration"):
    return None if v is None or (v >= 0 and math.isfinite(v)) else f"{option} must be >= 0, got {v!r}"


def _check_downbeats(v, chosen, option="--downbeats"):
    return None if v in DOWNBEATS else f"unknown downbeat tracker {v!r}; use {', '.join(DOWNBEATS)}"


def _check_boundary_times(v, chosen, option="--boundary-times"):
    return None if v in BOUNDARY_TIMES else f"unknown {option} {v!r}; use {', '.join(BOUNDARY_TIMES)}"


# in the order SegmentConfig.validate checks them
_PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("window", None, _check_window),
    Param("threshold", 0.5, _check_threshold),
    Param("beats_per_bar", None, _check_beats_per_bar),
    Param("labels", None, _check_labels),
    Param("min_duration", None, _check_min_duration),  # None: the method's own default
    Param("downbeats", "librosa", _check_downbeats),
    Param("boundary_times", "msaf", _check_boundary_times),
    Param("backend", "msaf", fixed=True),
    Param("sample_rate", AUDIO_SR, fixed=True),
    Param("resampler", AUDIO_RESAMPLER, fixed=True),
)}


# ---------------------------------------------------------------------------------
# companions: per-item arrays stored beside the boundaries


@dataclass(frozen=True)
class Companion:
    """An array stored with each item's boundaries (``/segmentations/<method>/<name>``).

    ``write(seg)`` gives the item's row (None: none); ``read(seg, values)`` puts a stored
    row back into a :class:`~vmtool.segmentation.base.Segmentation` (``--resume``).
    With *only_with*, the companion is written and read only when that parameter is set.
    """

    name: str
    write: Callable[[Any], Any]
    read: Callable[[Any, Any], None]
    only_with: str | None = None


def _np():
    import numpy as np

    return np


def _read_labels(seg, v):
    seg.labels = _np().asarray(v, dtype=_np().int64)


def _read_first(key: str, cast):
    def read(seg, v):
        if len(v):
            seg.extra[key] = cast(v[0])
    return read


def _read_beat_times(seg, v):
    seg.extra["beat_times"] = _np().asarray(v, dtype=_np().float64)


_COMPANIONS: dict[str, Companion] = {c.name: c for c in (
    Companion("labels", lambda s: s.labels, _read_labels, only_with="labels"),
    Companion("tempo", lambda s: _np().array([s.extra.get("tempo", _np().nan)]), _read_first("tempo", float)),
    Companion("beats_per_bar", lambda s: _np().array([s.extra.get("beats_per_bar", 0)]),
              _read_first("beats_per_bar", int)),
    Companion("beat_times", lambda s: _np().asarray(s.extra.get("beat_times", []), dtype=_np().float64),
              _read_beat_times),
)}


# ---------------------------------------------------------------------------------
# methods


class Run:
    """What a runner gets for one item and one method.

    Attributes
    ----------
    method : str
        The method's name.
    task : vmtool.segment.ItemTask
        The item: ``source`` (its media file), ``duration`` (s), ``has_audio``,
        ``has_video``, ``source_problem`` (why its media cannot be decoded again, or ""),
        ``curves`` (stored curves by name: ``(values, rate)``), and ``hpss`` (the
        audio's harmonic and percussive parts when the process that handed the item over
        computed them, else None).
    audio : np.ndarray [shape=(n,)] or None
        The item's mono audio at :data:`AUDIO_SR` Hz for methods of modality ``audio``.
    params : dict
        The method's recorded parameters (``SegmentConfig.params``), ``min_duration``
        included.
    device : str
        Torch device for methods that run a network.
    """

    def __init__(self, method: str, task, audio, params: dict[str, Any], device: str,
                 shared: dict[str, Any], stack: contextlib.ExitStack):
        self.method, self.task, self.audio, self.params, self.device = method, task, audio, params, device
        self._shared, self._stack = shared, stack

    @property
    def source(self) -> Path:
        return Path(self.task.source)

    def shared(self, key: str, factory: Callable[[], Any]) -> Any:
        """A per-item object shared by the methods of one item (built by *factory* on first use,
        closed after the item when it has ``close()``), e.g. MSAF's features."""
        if key not in self._shared:
            obj = factory()
            self._shared[key] = obj
            if hasattr(obj, "close"):
                self._stack.callback(obj.close)
        return self._shared[key]


@dataclass(frozen=True)
class SegmentationMethod:
    """One segmentation method.

    Attributes
    ----------
    name : str
        Its name (``--method``, ``/segmentations/<name>``).
    modality : {"audio", "video", "none"}
        What it reads: ``audio`` methods get the item's audio decoded once at
        :data:`AUDIO_SR` Hz; ``video`` and ``none`` methods read what they need themselves.
    family : str
        ``music`` (music structure through msaf's boundary algorithms), ``shots``,
        ``rhythm`` or ``windows``.
    summary : str
        One line for ``vmtool segment --help``.
    source : str
        The paper or library it follows.
    runner : callable
        ``runner(run: Run) -> Segmentation``.
    params : tuple of str
        Names of the :class:`Param` recorded with its results, in recording order (after
        ``method``, ``version`` and ``min_duration``, which every method records).
    min_duration : float
        Default shortest segment in seconds.
    stored_curve : str or None
        A curve of the collection the runner reads instead of the media when it is stored.
    companions : tuple of str
        :class:`Companion` arrays stored with its boundaries.
    hpss : bool
        Its runner starts from the harmonic and percussive parts of the audio
        (:func:`vmtool.dsp.hpss`, HPSS): a process handing it an item may compute them
        beforehand (``ItemTask.hpss``, from the runner's ``run.task``).
    prepare : callable, optional
        ``prepare(params)`` imports what the runner will need (its libraries) without
        reading any item; *params* are the method's recorded parameters, as the runner
        gets them. A process forked to segment beside another calls it as soon as it
        starts (:func:`vmtool.pipeline.start_segmenter`), so those imports run while the
        other process works. Results never depend on it: the runner imports what it needs.
    """

    name: str
    modality: str
    family: str
    summary: str
    source: str
    runner: Callable[[Run], Any]
    params: tuple[str, ...] = ()
    min_duration: float = 1.0
    stored_curve: str | None = None
    companions: tuple[str, ...] = ()
    hpss: bool = False
    prepare: Callable[[dict[str, Any]], None] | None = None

    def reads_media(self, curves) -> bool:
        """Whether it decodes the item's media, given the item's stored *curves* (names)."""
        return self.modality != "none" and not (self.stored_curve is not None and self.stored_curve in curves)


def _msaf(run: Run):
    from vmtool.segmentation.music import MsafSegmenter

    p = run.params
    segmenter = run.shared("msaf", lambda: MsafSegmenter(run.audio, AUDIO_SR, hpss=run.task.hpss))
    return segmenter.segment(run.method, labels=p["labels"], min_duration=p["min_duration"],
                             boundary_times=p["boundary_times"])


def _prepare_msaf(params: dict[str, Any]) -> None:
    from vmtool.segmentation.music import prepare_msaf

    prepare_msaf(params["method"], params.get("labels"))


def _prepare_beats(params: dict[str, Any]) -> None:
    from vmtool._librosa import import_librosa_beat

    import_librosa_beat()


def _transnet(run: Run):
    from vmtool.errors import MediaError, VmtoolError
    from vmtool.segmentation import shots

    p, task = run.params, run.task
    stored = task.curves.get("shot_likelihood")
    if stored is not None:
        return shots.shots_from_likelihood(stored[0], stored[1], task.duration, threshold=p["threshold"],
                                           min_duration=p["min_duration"])
    if not task.has_video:
        raise MediaError("has no video stream, needed by transnet", run.source)
    if task.source_problem:
        raise VmtoolError(task.source_problem, run.source)
    if not run.source.exists():
        raise VmtoolError("source media not found and no stored shot likelihood", run.source)
    return shots.shots_from_media(run.source, threshold=p["threshold"], min_duration=p["min_duration"],
                                  device=run.device)


def _beats(run: Run):
    from vmtool.segmentation import rhythm

    return rhythm.beats(run.audio, AUDIO_SR, min_duration=run.params["min_duration"])


def _bars(run: Run):
    p = run.params
    if p["downbeats"] == "madmom":
        from vmtool import media
        from vmtool.segmentation import downbeats

        # madmom's networks read 44.1 kHz: decode again at that rate
        y44 = media.load_audio(run.source, downbeats.MADMOM_SR, resampler=AUDIO_RESAMPLER)
        bpb = p["beats_per_bar"] if p["beats_per_bar"] and p["beats_per_bar"] >= 2 else None
        return downbeats.madmom_bars(y44, downbeats.MADMOM_SR, beats_per_bar=bpb, min_duration=p["min_duration"])
    from vmtool.segmentation import rhythm

    return rhythm.bars(run.audio, AUDIO_SR, beats_per_bar=p["beats_per_bar"], min_duration=p["min_duration"])


def _fixed(run: Run):
    from vmtool.segmentation import rhythm

    return rhythm.fixed(run.task.duration, window=float(run.params["window"]), min_duration=run.params["min_duration"])


_MSAF_PARAMS = ("labels", "backend", "sample_rate", "resampler", "boundary_times")

_BUILTIN = (
    SegmentationMethod(
        "foote", "audio", "music", "music sections: Foote's checkerboard novelty (MSAF)",
        "J. Foote, ICME 2000; MSAF (Nieto & Bello 2016)", _msaf, _MSAF_PARAMS, companions=("labels",),
        hpss=True, prepare=_prepare_msaf),
    SegmentationMethod(
        "sf", "audio", "music", "music sections: structural features (MSAF)",
        "J. Serrà et al., IEEE TMM 2014; MSAF", _msaf, _MSAF_PARAMS, companions=("labels",),
        hpss=True, prepare=_prepare_msaf),
    SegmentationMethod(
        "olda", "audio", "music", "music sections: ordinal linear discriminant analysis (MSAF)",
        "B. McFee and D. Ellis, ICASSP 2014; MSAF", _msaf, _MSAF_PARAMS, companions=("labels",),
        hpss=True, prepare=_prepare_msaf),
    SegmentationMethod(
        "transnet", "video", "shots", "video shots: thresholds the stored shot likelihood, or runs "
        "TransNetV2 on media inputs",
        "T. Souček and J. Lokoč, TransNet V2, 2020 (its predictions_to_scenes rule)", _transnet, ("threshold",),
        stored_curve="shot_likelihood"),
    SegmentationMethod(
        "beats", "audio", "rhythm", "every beat (librosa's beat tracker)",
        "D. Ellis, JNMR 2007 (librosa)", _beats, ("sample_rate", "resampler"), min_duration=0.0,
        companions=("tempo",), prepare=_prepare_beats),
    SegmentationMethod(
        "bars", "audio", "rhythm", "bars: every N beats from an estimated downbeat",
        "vmtool's downbeat estimator on librosa's beats, or madmom's (Böck et al. 2016)", _bars,
        ("beats_per_bar", "sample_rate", "resampler", "downbeats"), min_duration=0.0,
        companions=("tempo", "beats_per_bar", "beat_times"), prepare=_prepare_beats),
    SegmentationMethod(
        "fixed", "none", "windows", "windows of --window seconds",
        "a structure-blind baseline", _fixed, ("window",)),
)

_METHODS: dict[str, SegmentationMethod] = {m.name: m for m in _BUILTIN}


def register(method: SegmentationMethod, *new_params: Param, replace: bool = False) -> None:
    """Add *method* (and parameters of its own) to the registry.

    :func:`vmtool.segment.segment` sends the configured methods to its worker processes
    (``--workers``, ``--scheduler``), so their runners and checks must be importable
    functions (not lambdas or closures).

    Raises
    ------
    ParameterError
        A name already taken (without *replace*), an unknown modality, or a parameter or
        companion that is not declared.
    """
    if method.name in _METHODS and not replace:
        raise ParameterError(f"segmentation method {method.name!r} is already registered")
    if method.modality not in ("audio", "video", "none"):
        raise ParameterError(f"segmentation method {method.name!r}: modality must be audio, video or none, "
                             f"got {method.modality!r}")
    for p in new_params:
        if p.name in _PARAMS and _PARAMS[p.name] != p:
            raise ParameterError(f"segmentation parameter {p.name!r} is already declared")
    for p in new_params:
        _PARAMS[p.name] = p
    for name in method.params:
        if name not in _PARAMS:
            raise ParameterError(f"segmentation method {method.name!r}: undeclared parameter {name!r}")
    for name in method.companions:
        if name not in _COMPANIONS:
            raise ParameterError(f"segmentation method {method.name!r}: unknown companion {name!r}")
    _METHODS[method.name] = method


def get(name: str) -> SegmentationMethod:
    """The method registered as *name*."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ParameterError(f"unknown method {name!r}; methods: {', '.join(_METHODS)}") from None


def names(*, family: str | None = None, modality: str | None = None, first: str | None = None) -> tuple[str, ...]:
    """Registered method names in declaration order (of one family or modality, when given),
    with *first* moved to the front (a command's default)."""
    out = [m.name for m in _METHODS.values()
           if (family is None or m.family == family) and (modality is None or m.modality == modality)]
    if first is not None and first in out:
        out.remove(first)
        out.insert(0, first)
    return tuple(out)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A method and its parameters from ``METHOD[:KEY=VALUE,...]`` (e.g. ``fixed:window=5``,
    ``transnet:threshold=0.3``), the spelling of ``rank --query-segments``.

    Values are read as integers, then numbers, else kept as text. Only the parameters the
    method records (and ``min_duration``) may be given, and each given value is checked
    as the configuration's validation checks it; a parameter not given is left to the
    caller (a catalog's recorded value, else its default).

    Raises
    ------
    ParameterError
        Unknown method, a pair without ``=``, a key given twice, a key the method does
        not take, or a value its parameter refuses.
    """
    name, sep, rest = str(spec).strip().partition(":")
    method = get(name.strip())
    allowed = [k for k in method.params if not _PARAMS[k].fixed] + ["min_duration"]
    values: dict[str, Any] = {}
    for pair in (p.strip() for p in rest.split(",")) if sep else ():
        key, eq, text = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ParameterError(f"{spec!r}: expected KEY=VALUE after the method, got {pair!r}")
        if key not in allowed:
            raise ParameterError(f"{spec!r}: {method.name} takes no parameter {key!r}; "
                                 f"it takes {', '.join(allowed)}")
        if key in values:
            raise ParameterError(f"{spec!r}: {key!r} is given twice")
        values[key] = _value(text.strip())
        check = _PARAMS[key].check
        try:  # the message names the key as written here, not segment's option
            msg = _run_check(check, values[key], (method.name,), key) if check is not None else None
        except TypeError:  # a comparison with text: the value is not a number
            msg = f"{key} must be a number, got {text.strip()!r}"
        if msg:
            raise ParameterError(f"{spec!r}: {msg}")
    return method.name, values


def _run_check(check: Callable[..., str | None], value: Any, chosen: tuple[str, ...], option: str) -> str | None:
    """``check(value, chosen, option)``; a check registered with two arguments names its own option."""
    import inspect

    try:
        inspect.signature(check).bind(value, chosen, option)
    except (TypeError, ValueError):
        return check(value, chosen)
    return check(value, chosen, option)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def users(param_name: str) -> tuple[str, ...]:
    """The methods that record the parameter *param_name*."""
    return tuple(m.name for m in _METHODS.values() if param_name in m.params)


def param(name: str) -> Param:
    """The declared parameter *name*."""
    return _PARAMS[name]


def params() -> tuple[Param, ...]:
    """Every declared parameter, in the order they are checked."""
    return tuple(_PARAMS.values())


def companion(name: str) -> Companion:
    return _COMPANIONS[name]
