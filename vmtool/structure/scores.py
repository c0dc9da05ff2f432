"""The numbers of the music-video structure study, on plain arrays.

Everything here is a pure function of numpy arrays (no files, no media):

- :func:`resample_likelihood` puts TransNetV2's per-frame shot likelihood on the
  25 Hz grid of the study, ``f_shot``;
- :func:`window` and :func:`cooccurrence` give the co-occurrence score of music
  boundaries with shot cuts; :func:`chance_level` the same score for circularly
  shifted boundaries;
- :func:`phase_free` the best score over offsets within one bar, and its chance level
  from the same sweep on shuffled cuts (:func:`shuffle_cuts`);
- :func:`shot_durations`, :func:`duration_histogram`, :func:`histogram_mode` and
  :func:`sync_level` give the synchronisation level;
- :func:`mean_ci` the mean and its Student-t confidence interval.

Glossary (as in librosa): times are always in seconds, ``rate`` is in Hz; ``f_shot``
is sampled at :data:`RATE` = 25 Hz, sample ``j`` at ``j / 25`` s.
"""

from __future__ import annotations

import math

import numpy as np

from vmtool.errors import ParameterError
from vmtool.segmentation.base import positive_number

__all__ = [
    "RATE",
    "SIGMA_FRAMES",
    "TRUNCATE",
    "SYNC_LEVELS",
    "resample_likelihood",
    "window",
    "cooccurrence",
    "cooccurrence_score",
    "chance_level",
    "offset_sweep",
    "shuffle_cuts",
    "phase_free",
    "shot_durations",
    "duration_histogram",
    "histogram_mode",
    "sync_level",
    "mean_ci",
]

#: rate of ``f_shot`` in Hz (the study's frame rate)
RATE = 25.0
#: standard deviation of the co-occurrence window, in frames at :data:`RATE`
SIGMA_FRAMES = 2.0
#: the window is cut at this many standard deviations (weights below 1.6e-8 are dropped)
TRUNCATE = 6.0
#: synchronisation levels, from the shortest period to the longest
SYNC_LEVELS = ("beat", "bar", "pattern")
#: tolerance for a duration exactly on a histogram-bin edge, and for comparing scores
_EPS = 1e-9
_TIE = 1e-6


def _times(times, name: str = "times") -> np.ndarray:
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(t)):
        raise ParameterError(f"{name} holds non-finite values")
    return t


def resample_likelihood(likelihood: np.ndarray, fps: float, *, rate: float = RATE) -> np.ndarray:
    """Put a per-frame shot likelihood on a regular grid of *rate* Hz: ``f_shot``.

    TransNetV2's value for frame ``k`` is the probability that frame ``k`` is the last
    frame of a shot, so the cut it stands for lies at ``(k + 1) / fps``, the start of
    the next frame (where :func:`vmtool.segmentation.shots.shots_from_likelihood` puts
    shot boundaries). Each value is placed at the grid sample nearest to that time;
    when several values fall on one sample it keeps their maximum, and samples no
    value falls on are 0 (a cut can only happen between two frames). So a peak keeps
    its height whatever the frame rate, and at ``fps == rate`` the result is the
    input shifted by one sample (``f_shot[k + 1] = likelihood[k]``, ``f_shot[0] = 0``).

    Parameters
    ----------
    likelihood : np.ndarray [shape=(n_frames,)]
        Per-frame probabilities in [0, 1].
    fps : float > 0
        Frame rate of *likelihood* in Hz (value ``k`` belongs to the frame starting at
        ``k / fps``).
    rate : float > 0
        Output rate in Hz (25 in the study).

    Returns
    -------
    np.ndarray [shape=(round(n_frames / fps * rate) + 1,), dtype=float64]
        ``f_shot``; sample ``j`` is at ``j / rate`` seconds.

    Raises
    ------
    ParameterError
        A multi-dimensional or non-finite *likelihood*, or a bad *fps* or *rate*.

    Examples
    --------
    >>> resample_likelihood(np.array([0.0, 0.9, 0.1]), 25.0).tolist()
    [0.0, 0.0, 0.9, 0.1]
    """
    p = np.asarray(likelihood, dtype=np.float64)
    if p.ndim != 1:
        raise ParameterError(f"likelihood must have shape (n_frames,), got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ParameterError("likelihood holds non-finite values (NaN or inf)")
    fps = positive_number("fps", fps)
    rate = positive_number("rate", rate)
    n = p.size
    out = np.zeros(int(round(n / fps * rate)) + 1, dtype=np.float64)
    if n == 0:
        return out
    idx = np.floor((np.arange(1, n + 1) / fps) * rate + 0.5).astype(np.int64)
    np.clip(idx, 0, out.size - 1, out=idx)
    np.maximum.at(out, idx, p)
    return out


def window(offsets: np.ndarray, *, sigma_frames: float = SIGMA_FRAMES, rate: float = RATE) -> np.ndarray:
    """The co-occurrence window ``w(d) = exp(-d**2 / (2 sigma**2))``, with ``w(0) = 1``.

    Parameters
    ----------
    offsets : np.ndarray
        Time offsets ``d`` in seconds.
    sigma_frames : float > 0
        Standard deviation in frames at *rate* (2 frames at 25 Hz: 0.08 s).
    rate : float > 0
        Hz.

    Returns
    -------
    np.ndarray
        Weights, same shape as *offsets*; 0 beyond :data:`TRUNCATE` standard deviations.

    Examples
    --------
    >>> window(np.array([0.0, 0.08])).round(4).tolist()  # 0 and one sigma
    [1.0, 0.6065]
    """
    sigma = positive_number("sigma_frames", sigma_frames) / positive_number("rate", rate)
    d = np.asarray(offsets, dtype=np.float64)
    w = np.exp(-0.5 * (d / sigma) ** 2)
    return np.where(np.abs(d) <= TRUNCATE * sigma + _EPS, w, 0.0)


def cooccurrence(
    f_shot: np.ndarray,
    times: np.ndarray,
    *,
    sigma_frames: float = SIGMA_FRAMES,
    rate: float = RATE,
) -> np.ndarray:
    """Co-occurrence of each music boundary with shot cuts: ``S_i = sum_t w(t - t_i) f_shot(t)``.

    The sum runs over the samples ``t = j / rate`` of *f_shot*; ``w`` is
    :func:`window` (a Gaussian of ``sigma_frames`` frames with ``w(0) = 1``, cut at
    :data:`TRUNCATE` sigmas). A boundary exactly on an isolated cut of likelihood 1
    scores 1; one sigma away, 0.61. Samples outside the curve count as 0.

    Parameters
    ----------
    f_shot : np.ndarray [shape=(n,)]
        Shot likelihood at *rate* Hz (see :func:`resample_likelihood`).
    times : np.ndarray [shape=(k,) or any shape]
        Music boundaries ``t_i`` in seconds.
    sigma_frames, rate : float
        See :func:`window`.

    Returns
    -------
    np.ndarray [shape=times.shape, dtype=float64]
        ``S_i`` per boundary.

    Examples
    --------
    >>> f = np.zeros(100); f[50] = 1.0  # a cut at 2.0 s
    >>> cooccurrence(f, np.array([2.0, 2.08, 3.0])).round(4).tolist()
    [1.0, 0.6065, 0.0]
    """
    f = np.asarray(f_shot, dtype=np.float64).reshape(-1)
    t = np.asarray(times, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise ParameterError("times holds non-finite values")
    sigma_frames = positive_number("sigma_frames", sigma_frames)
    rate = positive_number("rate", rate)
    if t.size == 0 or f.size == 0:
        return np.zeros(t.shape)
    half = int(math.ceil(TRUNCATE * sigma_frames)) + 1
    base = np.floor(t * rate).astype(np.int64)
    j = base[..., None] + np.arange(-half, half + 2)
    ok = (j >= 0) & (j < f.size)
    w = window(j / rate - t[..., None], sigma_frames=sigma_frames, rate=rate)
    vals = np.where(ok, f[np.clip(j, 0, f.size - 1)], 0.0)
    return (w * vals).sum(axis=-1)


def cooccurrence_score(f_shot: np.ndarray, times: np.ndarray, **kwargs) -> float:
    """``S(l)``: the mean of :func:`cooccurrence` over the boundaries *times* (NaN without any)."""
    s = cooccurrence(f_shot, times, **kwargs)
    return float(s.mean()) if s.size else math.nan


def chance_level(
    f_shot: np.ndarray,
    times: np.ndarray,
    duration: float,
    *,
    shuffles: int = 1000,
    rng: np.random.Generator | int | None = 0,
    sigma_frames: float = SIGMA_FRAMES,
    rate: float = RATE,
    chunk: int = 64,
) -> tuple[float, float]:
    """Chance level of ``S(l)``: the score of the boundaries circularly shifted at random.

    For each of *shuffles* draws, every boundary is moved by the same offset
    ``delta ~ U[0, duration)`` and wrapped around the clip
    (``(t_i + delta) mod duration``): the boundaries keep their spacing (the music's
    rhythm) but lose their alignment with the cuts. The chance level is the mean of the
    shifted scores; *p* is the share of draws scoring at least the observed ``S(l)``,
    counted as ``(1 + #{S_shifted >= S}) / (shuffles + 1)``.

    Parameters
    ----------
    f_shot : np.ndarray [shape=(n,)]
    times : np.ndarray [shape=(k,)]
        Boundaries in seconds.
    duration : float > 0
        The clip's duration in seconds (the period of the circular shift).
    shuffles : int >= 1
    rng : np.random.Generator, int or None
        Generator or seed of the offsets.
    sigma_frames, rate : float
        See :func:`window`.
    chunk : int
        Draws scored at once (bounds memory on long clips).

    Returns
    -------
    chance : float
        Mean shifted score (NaN without boundaries).
    p : float
        In ``(0, 1]`` (NaN without boundaries).

    Examples
    --------
    >>> f = np.zeros(251); f[::50] = 1.0  # a cut every 2 s
    >>> chance, p = chance_level(f, np.array([2.0, 4.0, 6.0]), 10.0, shuffles=2000, rng=0)
    >>> round(chance, 2), p < 0.05  # sqrt(2 pi) * 2 frames / 50 frames = 0.10
    (0.1, True)
    """
    t = _times(times)
    duration = positive_number("duration", duration)
    if not isinstance(shuffles, (int, np.integer)) or isinstance(shuffles, bool) or shuffles < 1:
        raise ParameterError(f"shuffles must be a positive integer, got {shuffles!r}")
    if t.size == 0:
        return math.nan, math.nan
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    offsets = gen.uniform(0.0, duration, size=int(shuffles))
    observed = cooccurrence_score(f_shot, t, sigma_frames=sigma_frames, rate=rate)
    scores = np.empty(offsets.size)
    for a in range(0, offsets.size, max(1, int(chunk))):
        d = offsets[a : a + chunk]
        shifted = np.mod(t[None, :] + d[:, None], duration)
        scores[a : a + d.size] = cooccurrence(f_shot, shifted, sigma_frames=sigma_frames, rate=rate).mean(axis=1)
    # ties within the window's truncation error (< 1e-7) count as ties
    p = (1.0 + float(np.sum(scores >= observed - _TIE))) / (offsets.size + 1.0)
    return float(scores.mean()), p


def offset_sweep(
    f_shot: np.ndarray,
    times: np.ndarray,
    period: float,
    *,
    sigma_frames: float = SIGMA_FRAMES,
    rate: float = RATE,
) -> tuple[np.ndarray, np.ndarray]:
    """``S(l + delta)`` for every offset ``delta`` of one *period*, on the grid of ``f_shot``.

    The offsets are ``j / rate`` for the integers ``j`` with ``-period / 2 <= j / rate <
    period / 2`` (one frame apart: 53 offsets for a 2.12 s bar at 25 Hz), so every
    phase of a periodic set of boundaries of that period is tried once.

    Returns
    -------
    offsets : np.ndarray [shape=(m,)]
        Seconds, increasing.
    scores : np.ndarray [shape=(m,)]
        ``S(l + delta)`` (the mean of :func:`cooccurrence`) per offset.

    Examples
    --------
    >>> f = np.zeros(251); f[[55, 105, 155]] = 1.0  # cuts at 2.2, 4.2, 6.2 s
    >>> d, s = offset_sweep(f, np.array([2.0, 4.0, 6.0]), 2.0)
    >>> round(float(d[np.argmax(s)]), 2), round(float(s.max()), 2)
    (0.2, 1.0)
    """
    f = np.asarray(f_shot, dtype=np.float64).reshape(-1)
    offsets, a = _sweep_matrix(times, period, f.size, sigma_frames=sigma_frames, rate=rate)
    if a is None:
        return offsets, np.full(offsets.size, math.nan)
    return offsets, a @ f


def _sweep_matrix(times, period: float, n: int, *, sigma_frames: float, rate: float):
    """The offsets of :func:`offset_sweep` and the matrix ``A`` with ``A @ f_shot`` its scores.

    ``S(l + delta_j) = sum_m A[j, m] f_shot[m]``: each row holds the window weights of
    every boundary moved by ``delta_j``, divided by the number of boundaries. Built once,
    it scores any curve of *n* samples (the shuffled copies) with one matrix product.
    """
    t = _times(times)
    period = positive_number("period", period)
    rate = positive_number("rate", rate)
    sigma_frames = positive_number("sigma_frames", sigma_frames)
    j = np.arange(int(math.ceil(-period / 2.0 * rate - _EPS)), int(math.ceil(period / 2.0 * rate - _EPS)))
    offsets = j / rate
    if t.size == 0:
        return offsets, None
    moved = t[None, :] + offsets[:, None]  # (m, k)
    half = int(math.ceil(TRUNCATE * sigma_frames)) + 1
    idx = np.floor(moved * rate).astype(np.int64)[..., None] + np.arange(-half, half + 2)  # (m, k, L)
    w = window(idx / rate - moved[..., None], sigma_frames=sigma_frames, rate=rate) / t.size
    ok = (idx >= 0) & (idx < n) & (w > 0)
    rows = np.broadcast_to(np.arange(offsets.size)[:, None, None], idx.shape)
    a = np.zeros(offsets.size * max(n, 1))
    np.add.at(a, (rows[ok] * n + idx[ok]), w[ok])
    return offsets, a.reshape(offsets.size, max(n, 1))[:, :n]


def shuffle_cuts(f_shot: np.ndarray, cut_samples: np.ndarray, rng: np.random.Generator, *, lead: int = 6) -> np.ndarray:
    """``f_shot`` with its cuts moved to random places: the null model of :func:`phase_free`.

    Each cut's profile (the ``2 lead + 1`` samples around its peak) is moved to a sample
    drawn uniformly on the clip (without replacement; where two profiles meet, the
    maximum is kept), and the rest of the curve (the low likelihood between cuts) is
    rotated by a random number of samples. The number of cuts and each cut's shape are
    kept; their times, and so their spacing, become random. (Keeping the shot durations
    instead, by shuffling the order of the shots, would keep every cut on a bar grid when
    the shots last whole bars: the sweep would then find the same phase in every copy,
    and bar-synchronous cuts could never score above chance.)

    Parameters
    ----------
    f_shot : np.ndarray [shape=(n,)]
    cut_samples : np.ndarray of int
        Sample index of each cut's peak in *f_shot*.
    rng : np.random.Generator
    lead : int >= 0
        Half-width of a cut's profile in samples (6 = 3 sigma of the window at 25 Hz).

    Returns
    -------
    np.ndarray [shape=(n,)]
    """
    f = np.asarray(f_shot, dtype=np.float64).reshape(-1)
    n = f.size
    if n == 0:
        return f.copy()
    c = np.unique(np.asarray(cut_samples, dtype=np.int64))
    c = c[(c >= 0) & (c < n)]
    k = np.arange(-int(lead), int(lead) + 1)
    idx = c[:, None] + k
    ok = (idx >= 0) & (idx < n)
    profiles = np.where(ok, f[np.clip(idx, 0, n - 1)], 0.0)
    background = f.copy()
    background[idx[ok]] = 0.0
    out = np.roll(background, int(rng.integers(0, n)))
    if c.size:
        new = rng.choice(n, size=min(c.size, n), replace=False)
        np.maximum.at(out, np.mod(new[:, None] + k, n).reshape(-1), profiles[: new.size].reshape(-1))
    return out


def phase_free(
    f_shot: np.ndarray,
    times: np.ndarray,
    period: float,
    cut_samples: np.ndarray,
    *,
    shuffles: int = 1000,
    rng: np.random.Generator | int | None = 0,
    sigma_frames: float = SIGMA_FRAMES,
    rate: float = RATE,
) -> tuple[float, float, float, float]:
    """The phase-free co-occurrence score: the best ``S(l + delta)`` over one period.

    Which beat a tracker calls "one" decides ``S(l_bar)``; sweeping the offset over one
    bar (:func:`offset_sweep`) removes that choice, but the maximum of a sweep is larger
    than a single score by chance alone. So the chance level is the same maximum over
    the same sweep, computed on *shuffles* copies of ``f_shot`` whose cuts are moved to
    random times (:func:`shuffle_cuts`): searching the offset is then not rewarded.

    Returns
    -------
    best : float
        ``max_delta S(l + delta)`` (NaN without boundaries).
    offset : float
        The ``delta`` of the best score, seconds in ``[-period / 2, period / 2)``; among
        ties, the smallest ``|delta|``.
    chance : float
        Mean of the shuffled copies' best scores.
    p : float
        ``(1 + #{shuffled best >= best}) / (shuffles + 1)``.
    """
    if not isinstance(shuffles, (int, np.integer)) or isinstance(shuffles, bool) or shuffles < 1:
        raise ParameterError(f"shuffles must be a positive integer, got {shuffles!r}")
    f = np.asarray(f_shot, dtype=np.float64).reshape(-1)
    offsets, a = _sweep_matrix(times, period, f.size, sigma_frames=sigma_frames, rate=rate)
    if a is None or offsets.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    observed = a @ f
    best = float(observed.max())
    ties = np.flatnonzero(observed >= best - _TIE)
    offset = float(offsets[ties[np.argmin(np.abs(offsets[ties]))]])
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    maxima = np.empty(int(shuffles))
    chunk = 64
    for s0 in range(0, maxima.size, chunk):
        block = np.stack([shuffle_cuts(f, cut_samples, gen) for _ in range(min(chunk, maxima.size - s0))], axis=1)
        maxima[s0 : s0 + block.shape[1]] = (a @ block).max(axis=0)
    p = (1.0 + float(np.sum(maxima >= best - _TIE))) / (maxima.size + 1.0)
    return best, offset, float(maxima.mean()), p


def shot_durations(cuts: np.ndarray, duration: float) -> np.ndarray:
    """Durations of the shots between 0, the cuts and *duration* (seconds).

    Cuts outside ``(0, duration)`` are ignored. Without a cut there is one shot, the
    whole clip.

    Examples
    --------
    >>> shot_durations(np.array([2.0, 3.5]), 5.0).tolist()
    [2.0, 1.5, 1.5]
    """
    duration = positive_number("duration", duration)
    c = np.sort(_times(cuts, "cuts"))
    c = c[(c > 0) & (c < duration)]
    return np.diff(np.concatenate([[0.0], c, [duration]]))


def duration_histogram(durations: np.ndarray, bin_width: float) -> np.ndarray:
    """Histogram of shot durations with bins centred on multiples of *bin_width*.

    Bin ``k`` counts durations in ``[(k - 0.5) w, (k + 0.5) w)`` (bin 0: ``[0, w / 2)``),
    so a duration of exactly ``k w`` (e.g. 2.0 s with ``w = 0.2``) is in the middle of a
    bin, never on an edge. With the default ``w = 0.2`` s (5 frames at 25 Hz) every
    edge lies halfway between two frame-quantised durations of a 25 fps video.

    Returns
    -------
    np.ndarray [shape=(K + 1,), dtype=int64]
        Counts of bins 0..K, K the bin of the longest duration (empty input: ``[]``).

    Examples
    --------
    >>> duration_histogram(np.array([0.5, 1.0, 1.05, 2.0]), 0.5).tolist()
    [0, 1, 2, 0, 1]
    """
    w = positive_number("bin_width", bin_width)
    d = _times(durations, "durations")
    if d.size == 0:
        return np.zeros(0, dtype=np.int64)
    k = np.floor(d / w + 0.5 + _EPS).astype(np.int64)
    return np.bincount(np.maximum(k, 0)).astype(np.int64)


def histogram_mode(durations: np.ndarray, bin_width: float) -> float:
    """``D_shot_max``: the centre of the fullest bin of :func:`duration_histogram`.

    Ties go to the tied bin closest to the median duration, then to the shorter one.
    NaN for no duration.

    Examples
    --------
    >>> histogram_mode(np.array([2.0, 2.04, 1.96, 4.0, 0.5]), 0.2)
    2.0
    """
    d = _times(durations, "durations")
    counts = duration_histogram(d, bin_width)
    if counts.size == 0:
        return math.nan
    w = float(bin_width)
    best = np.flatnonzero(counts == counts.max())
    med = float(np.median(d))
    k = min(best, key=lambda b: (abs(b * w - med), b))
    return round(float(k * w), 9)


def sync_level(d_shot_max: float, d_beat: float, d_bar: float) -> str:
    """The synchronisation level of a clip from its typical shot duration.

    The thesis' rule: the cuts follow the level with period ``D`` when
    ``0.5 D < D_shot_max < 1.5 D``, with ``D = D_beat`` (``beat``), ``D_bar`` (``bar``)
    or ``4 D_bar`` (``pattern``, a four-bar phrase). In metres of fewer than three beats
    two ranges overlap; the level whose period is closest to ``D_shot_max`` (ratio
    nearest 1) wins.

    Returns
    -------
    str
        ``beat``, ``bar``, ``pattern``, ``none`` (no range holds ``D_shot_max``) or
        ``unknown`` (a NaN or non-positive input: no cut, no beat).

    Examples
    --------
    >>> sync_level(2.0, 0.5, 2.0), sync_level(0.6, 0.5, 2.0), sync_level(3.5, 0.5, 2.0)
    ('bar', 'beat', 'none')
    """
    vals = [float(x) for x in (d_shot_max, d_beat, d_bar)]
    if not all(math.isfinite(v) and v > 0 for v in vals):
        return "unknown"
    d, beat, bar = vals
    cands = [(lvl, p) for lvl, p in zip(SYNC_LEVELS, (beat, bar, 4.0 * bar)) if 0.5 * p < d < 1.5 * p]
    if not cands:
        return "none"
    return min(cands, key=lambda c: abs(math.log(d / c[1])))[0]


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of the finite *values* and its Student-t confidence interval.

    Returns
    -------
    mean, low, high : float
        NaN without values; *low* and *high* NaN with a single value.
    n : int
        Number of finite values used.

    Examples
    --------
    >>> [round(x, 3) for x in mean_ci([1.0, 2.0, 3.0])[:3]]
    [2.0, -0.484, 4.484]
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(v.mean())
    if n == 1:
        return m, math.nan, math.nan, 1
    from scipy.special import stdtrit  # the Student t quantile (scipy.stats takes seconds to import)

    half = float(stdtrit(n - 1, 0.5 + level / 2.0)) * float(v.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half, n
