"""Reference (ground-truth) segmentations: reading them and scoring boundaries against them.

Readable formats
----------------
JAMS (``.jams``, ``.jamz``)
    The first annotation whose namespace is ``segment_*`` (``segment_open``,
    ``segment_salami_upper``/``_function``/``_lower``, ``segment_tut``...) or
    ``multi_segment``. For ``multi_segment`` only the coarsest level is used: the
    smallest ``level`` present, 0 by the JAMS convention.
``time label`` text (SALAMI's ``textfile*.txt``, the Harmonix Set's ``segments/*.txt``)
    One segment start a line: a time in seconds, whitespace (tab or spaces), a label
    that may contain spaces (``0.464399092\\tA, a, Intro``). The last line is usually an
    end marker (``End``, ``end``) or a final ``Silence`` segment; it is read like any
    line. Blank lines and lines starting with ``#`` are skipped.
``start end label`` text (MIREX / Isophonics ``.lab``)
    Recognised when every line has at least three fields and the first two are times.

Times are returned as boundaries in the sense of the annotation: every time at which
a segment starts or ends, 0 and the end of the music included when the annotation
has them. Scoring (:func:`hit_rates`) drops those outside ``(0, duration)``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from vmtool.errors import FormatError, ParameterError, VmtoolError

__all__ = ["read_reference", "find_reference", "hit_rates", "mean_hit_rates", "HIT_RATE_KEYS", "WINDOWS"]

#: hit-rate windows in seconds and the suffix of their keys
WINDOWS = ((0.5, "0.5"), (3.0, "3"))
#: keys of :func:`hit_rates`' result, in order
HIT_RATE_KEYS = tuple(f"{m}@{s}" for _, s in WINDOWS for m in ("P", "R", "F"))

_SALAMI_FILES = ("textfile1_uppercase.txt", "textfile2_uppercase.txt")
# edges of JAMS intervals closer than this are one boundary (float sums of time + duration)
_MERGE_S = 1e-6


def read_reference(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a reference segmentation (JAMS or text; see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        ``.jams``/``.jamz`` files are read as JAMS, anything else as text.

    Returns
    -------
    boundaries : np.ndarray [shape=(m,), dtype=float64]
        Seconds, sorted and unique: every segment start and end the file gives
        (including 0 and the end time when present).
    labels : list of str [len=m]
        ``labels[i]`` is the label of the segment starting at ``boundaries[i]``. Text
        files keep every line's label as written, the end marker included (``"End"``);
        where no segment starts (the end of the last JAMS or ``.lab`` interval, a gap
        between intervals) the label is ``""``.

    Raises
    ------
    VmtoolError
        The file does not exist.
    FormatError
        The file cannot be parsed (the message names the file and, for text, the line),
        holds no segment annotation, or its times are negative, not finite or (text)
        decreasing.

    Examples
    --------
    A SALAMI ``textfile1_uppercase.txt`` holding ``0.0\\tSilence``,
    ``0.46\\tA, Intro``, ``12.5\\tB, Verse``, ``30.1\\tEnd`` reads as
    ``(array([0., 0.46, 12.5, 30.1]), ["Silence", "A, Intro", "B, Verse", "End"])``.
    """
    p = Path(path)
    if not p.exists():
        raise VmtoolError("no such file", p)
    if p.is_dir():
        raise VmtoolError("is a directory, expected a reference segmentation file", p)
    if p.suffix.lower() in (".jams", ".jamz"):
        return _read_jams(p)
    return _read_text(p)


def _read_jams(p: Path) -> tuple[np.ndarray, list[str]]:
    import jams

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jam = jams.load(str(p), validate=False)
    except (jams.JamsError, ValueError, KeyError, TypeError, AttributeError, OSError, EOFError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise FormatError(f"not a JAMS file jams can read ({msg[:200]})", p) from exc
    ann = next(
        (a for a in jam.annotations if a.namespace.startswith("segment_") or a.namespace == "multi_segment"),
        None,
    )
    if ann is None:
        found = sorted({a.namespace for a in jam.annotations})
        raise FormatError(
            f"no segment annotation (namespace segment_* or multi_segment); namespaces found: {found or 'none'}", p
        )
    starts: list[float] = []
    ends: list[float] = []
    labels: list[str] = []
    obs = list(ann.data)
    if ann.namespace == "multi_segment":
        levels = [o.value.get("level", 0) for o in obs if isinstance(o.value, Mapping)]
        top = min(levels) if levels else 0
        obs = [o for o in obs if isinstance(o.value, Mapping) and o.value.get("level", 0) == top]
    for o in obs:
        t, d = float(o.time), float(o.duration or 0.0)
        if not (math.isfinite(t) and math.isfinite(d)) or t < 0 or d < 0:
            raise FormatError(
                f"segment annotation {ann.namespace}: bad interval time={o.time!r} duration={o.duration!r}", p
            )
        value = o.value.get("label", "") if isinstance(o.value, Mapping) else o.value
        starts.append(t)
        ends.append(t + d)
        labels.append("" if value is None else str(value))
    return _merge_intervals(starts, ends, labels)


def _merge_intervals(starts: list[float], ends: list[float], labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Boundaries and per-boundary labels from intervals: starts win over ends at one time."""
    events = sorted([(t, 0, lab) for t, lab in zip(starts, labels)] + [(t, 1, "") for t in ends],
                    key=lambda e: (e[0], e[1]))
    times: list[float] = []
    out: list[str] = []
    for t, kind, lab in events:
        if times and t - times[-1] <= _MERGE_S:
            if kind == 0 and out[-1] == "" and lab:
                out[-1] = lab
            continue
        times.append(t)
        out.append(lab)
    return np.asarray(times, dtype=np.float64), out


def _parse_time(token: str, p: Path, lineno: int) -> float:
    try:
        t = float(token)
    except ValueError:
        raise FormatError(f"line {lineno}: cannot read a time in seconds from {token!r}", p) from None
    if not math.isfinite(t) or t < 0:
        raise FormatError(f"line {lineno}: time {token!r} is not a non-negative finite number", p)
    return t


def _is_time(token: str) -> bool:
    try:
        return math.isfinite(float(token))
    except ValueError:
        return False


def _read_text(p: Path) -> tuple[np.ndarray, list[str]]:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})", p) from None
    rows: list[tuple[int, str]] = []  # (line number, stripped line)
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s and not s.startswith("#"):
            rows.append((lineno, s))
    if not rows:
        raise FormatError("no segment lines (expected 'time label' or 'start end label' lines)", p)

    fields = [s.split(None, 2) for _, s in rows]
    if all(len(f) >= 3 and _is_time(f[0]) and _is_time(f[1]) for f in fields):  # start end label
        starts, ends, labels = [], [], []
        for (lineno, _), f in zip(rows, fields):
            a, b = _parse_time(f[0], p, lineno), _parse_time(f[1], p, lineno)
            if b < a:
                raise FormatError(f"line {lineno}: segment ends ({b:g} s) before it starts ({a:g} s)", p)
            starts.append(a)
            ends.append(b)
            labels.append(f[2].strip())
        return _merge_intervals(starts, ends, labels)

    times: list[float] = []
    labels = []
    for lineno, line in rows:
        f = line.split(None, 1)
        t = _parse_time(f[0], p, lineno)
        if times and t < times[-1]:
            raise FormatError(f"line {lineno}: time {t:g} s comes before the previous line's {times[-1]:g} s", p)
        label = f[1].strip() if len(f) > 1 else ""
        if times and t == times[-1]:  # a repeated time: the later line's label wins
            labels[-1] = label
            continue
        times.append(t)
        labels.append(label)
    return np.asarray(times, dtype=np.float64), labels


def find_reference(directory: str | os.PathLike, item_id: str) -> Path | None:
    """The reference file for *item_id* in *directory*, or None.

    Looks, in this order, for ``<id>.jams``, ``<id>.jamz``, ``<id>.txt``, ``<id>.lab``,
    then the SALAMI layout ``<id>/parsed/textfile1_uppercase.txt`` and
    ``<id>/parsed/textfile2_uppercase.txt`` (annotator 1 first).

    Parameters
    ----------
    directory : str or os.PathLike
    item_id : str
        The item's id (e.g. the media file's stem).

    Raises
    ------
    VmtoolError
        *directory* is not an existing directory.
    """
    d = Path(directory)
    if not d.is_dir():
        raise VmtoolError("no such directory (expected a directory of reference segmentations)", d)
    item_id = str(item_id)
    candidates = [d / f"{item_id}{ext}" for ext in (".jams", ".jamz", ".txt", ".lab")]
    candidates += [d / item_id / "parsed" / name for name in _SALAMI_FILES]
    return next((c for c in candidates if c.is_file()), None)


def _intervals(boundaries: np.ndarray, duration: float) -> np.ndarray:
    b = np.asarray(boundaries, dtype=np.float64).reshape(-1)
    b = np.unique(b[np.isfinite(b) & (b > 0) & (b < duration)])
    e = np.concatenate([[0.0], b, [duration]])
    return np.stack([e[:-1], e[1:]], axis=1)


def hit_rates(estimated: Iterable[float], reference: Iterable[float], duration: float) -> dict[str, float]:
    """Boundary hit rates at 0.5 s and 3 s (``mir_eval.segment.detection``).

    Both boundary lists become segment intervals with 0 and *duration* as outer edges
    (times outside ``(0, duration)`` and duplicates are dropped first), and are scored
    with ``trim=False``: the edges 0 and *duration* count as boundaries in both and
    always match (as in msaf's and MIREX's untrimmed scores), so an estimate with no
    boundary against a reference with ``k`` scores ``P = 1``, ``R = 2 / (k + 2)``.
    A hit is an estimated and a reference boundary at most *window* seconds apart,
    each boundary used once (maximum matching).

    Parameters
    ----------
    estimated, reference : array-like of float
        Boundary times in seconds (may include 0 and *duration*).
    duration : float > 0
        Seconds.

    Returns
    -------
    dict
        ``{"P@0.5", "R@0.5", "F@0.5", "P@3", "R@3", "F@3"}`` -> float in [0, 1]
        (precision, recall, F-measure).

    Raises
    ------
    ParameterError
        A non-positive or non-finite *duration*.

    Examples
    --------
    >>> r = hit_rates([10.2, 30.0], [10.0, 20.0], 40.0)
    >>> r["P@0.5"], r["R@0.5"], r["P@3"]
    (0.75, 0.75, 0.75)
    """
    import mir_eval

    try:
        d = float(duration)
    except (TypeError, ValueError):
        d = math.nan
    if not (math.isfinite(d) and d > 0):
        raise ParameterError(f"duration must be positive, got {duration!r}")
    est = _intervals(np.asarray(list(estimated), dtype=np.float64), d)
    ref = _intervals(np.asarray(list(reference), dtype=np.float64), d)
    out: dict[str, float] = {}
    for window, suffix in WINDOWS:
        p, r, f = mir_eval.segment.detection(ref, est, window=window, beta=1.0, trim=False)
        out[f"P@{suffix}"], out[f"R@{suffix}"], out[f"F@{suffix}"] = float(p), float(r), float(f)
    return out


def mean_hit_rates(rates: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each key over items (of :func:`hit_rates` results).

    Parameters
    ----------
    rates : iterable of dict
        One :func:`hit_rates` result per item; all with the same keys.

    Returns
    -------
    dict
        Key -> mean over the items, keys in the first item's order.

    Raises
    ------
    ParameterError
        No item, or items with different keys.
    """
    rows = [dict(r) for r in rates]
    if not rows:
        raise ParameterError("no hit rates to average (no item had a reference)")
    keys = list(rows[0])
    for i, r in enumerate(rows[1:], start=1):
        if set(r) != set(keys):
            raise ParameterError(f"hit rates of item {i} have keys {sorted(r)}, item 0 has {sorted(keys)}")
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}
