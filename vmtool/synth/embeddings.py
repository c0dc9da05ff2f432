"""Synthetic catalogs with a known answer, for tests and benchmarks.

Each item has a music track (audio segment embeddings) and a video whose segment
embeddings are noisy versions of the track's, segment by segment: the item's own
track is the right answer for its video, and retrieval is clearly above chance.
To look like real embeddings the vectors are structured: items belong to clusters
("genres"), and a track repeats a few sections (themes), so other tracks of the
same cluster are close competitors and a track's segments resemble one another.

Every vector is L2-normalised. Generation is deterministic given ``seed`` and runs
in fixed-size chunks of items, so 100,000 items take no more memory than their
storage.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.errors import ParameterError
from vmtool.ranking.segments import SegmentSet

__all__ = ["SynthConfig", "synth_embeddings", "synth_chunks", "synth_catalog"]

_CHUNK = 1024  # items generated per step (fixed: the output does not depend on the caller)


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of the synthetic embeddings.

    The model: each cluster ("genre") has a palette of ``n_palette`` themes around its
    centre; a track takes ``n_themes`` of them (its own variants, ``item_spread``)
    and alternates between them, one theme per segment (plus ``segment_spread``).
    Tracks of a cluster share material but not its order, so their centroids are
    close while their sequences differ. Each video segment is its track segment plus
    noise.

    Attributes
    ----------
    seg_range : (int, int)
        Fewest and most segments per item (inclusive).
    dim : int
        Embedding width.
    intrinsic_dim : int or None
        The vectors live in a random subspace of this dimension (trained embeddings
        have a low effective rank; it sets how similar unrelated items look by
        chance, about ``1 / sqrt(intrinsic_dim)``). None: the full width.
    noise : float
        Video segment = track segment + ``noise`` x a random unit vector, then
        normalised: their cosine is about ``1 / sqrt(1 + noise**2)``.
    n_clusters : int or None
        Number of clusters; default ``round(sqrt(n_items))``.
    n_palette, n_themes : int
        Themes per cluster, and per track (at most ``n_palette``).
    theme_spread, item_spread, segment_spread : float
        Spread of a palette theme around its cluster centre, of a track's variant
        around the palette theme, of a segment around its theme (same convention
        as *noise*).
    clip_noise : float
        Noise on the clip embeddings (the normalised mean of the segments).
    segment_seconds : (float, float)
        Range of segment durations, seconds.
    """

    seg_range: tuple[int, int] = (8, 16)
    dim: int = 512
    intrinsic_dim: int | None = 16
    noise: float = 2.0
    n_clusters: int | None = None
    n_palette: int = 6
    n_themes: int = 3
    theme_spread: float = 1.0
    item_spread: float = 0.5
    segment_spread: float = 0.4
    clip_noise: float = 0.6
    segment_seconds: tuple[float, float] = (4.0, 20.0)

    def check(self) -> None:
        lo, hi = self.seg_range
        if not (1 <= lo <= hi):
            raise ParameterError(f"seg_range must be (lo, hi) with 1 <= lo <= hi, got {self.seg_range}")
        if self.dim < 1:
            raise ParameterError(f"dim must be >= 1, got {self.dim}")
        if self.intrinsic_dim is not None and not (1 <= self.intrinsic_dim <= self.dim):
            raise ParameterError(f"intrinsic_dim must be between 1 and dim ({self.dim}), got {self.intrinsic_dim}")
        if not (1 <= self.n_themes <= self.n_palette):
            raise ParameterError(f"need 1 <= n_themes <= n_palette, got {self.n_themes} and {self.n_palette}")
        for k in ("noise", "theme_spread", "item_spread", "segment_spread", "clip_noise"):
            if getattr(self, k) < 0:
                raise ParameterError(f"{k} must be >= 0, got {getattr(self, k)}")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _perturb(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``unit(x + amount * r)`` with ``r`` a random unit vector per row."""
    if amount == 0:
        return _unit(x)
    return _unit(x + amount * _unit(rng.standard_normal(x.shape)))


def synth_chunks(n_items: int, *, seed: int = 0, config: SynthConfig | None = None, video_items: int | None = None,
                 audio: bool = True):
    """The items of :func:`synth_embeddings`, generated chunk by chunk (bounded memory).

    Returns ``(lengths, chunks)``: the segment count of every item, and an iterator of
    dicts with ``items`` and ``rows`` (start, end), ``spans``, and — float64 — ``audio``
    and ``audio_clip`` (when *audio*), ``video`` and ``video_clip`` (for items below
    *video_items*, all by default). The same *seed* gives the same items whatever is kept.
    """
    cfg = config or SynthConfig()
    cfg.check()
    rng0 = np.random.default_rng(seed)
    lo, hi = cfg.seg_range
    d = cfg.dim
    k = cfg.intrinsic_dim or d
    basis = np.linalg.qr(rng0.standard_normal((d, k)))[0].T if k < d else None  # (k, d), orthonormal rows
    lens = rng0.integers(lo, hi + 1, size=n_items)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    n_clusters = cfg.n_clusters or max(1, int(round(np.sqrt(n_items))))
    centers = _unit(rng0.standard_normal((n_clusters, k)))
    palette = _perturb(np.repeat(centers, cfg.n_palette, axis=0), cfg.theme_spread, rng0).reshape(
        n_clusters, cfg.n_palette, k)
    cluster = rng0.integers(0, n_clusters, size=n_items)
    n_video = n_items if video_items is None else min(n_items, int(video_items))

    def chunks():
        for c, i0 in enumerate(range(0, n_items, _CHUNK)):
            i1 = min(n_items, i0 + _CHUNK)
            rng = np.random.default_rng([seed, c])
            n = i1 - i0
            pick = np.argsort(rng.random((n, cfg.n_palette)), axis=1)[:, :cfg.n_themes]  # themes of each track
            themes = _perturb(palette[cluster[i0:i1, None], pick].reshape(-1, k), cfg.item_spread, rng).reshape(
                n, cfg.n_themes, k)
            ln = lens[i0:i1]
            owner = np.repeat(np.arange(n), ln)
            pattern = rng.integers(0, cfg.n_themes, size=len(owner))
            a = _perturb(themes[owner, pattern], cfg.segment_spread, rng)
            v = _perturb(a, cfg.noise, rng)
            r0, r1 = int(offsets[i0]), int(offsets[i1])
            sums_a = np.add.reduceat(a, offsets[i0:i1] - r0, axis=0)
            sums_v = np.add.reduceat(v, offsets[i0:i1] - r0, axis=0)
            ca = _perturb(sums_a, cfg.clip_noise * np.linalg.norm(sums_a, axis=1, keepdims=True).mean(), rng)
            cv = _perturb(sums_v, cfg.clip_noise * np.linalg.norm(sums_v, axis=1, keepdims=True).mean(), rng)
            dur = rng.uniform(*cfg.segment_seconds, size=len(owner))
            ends = np.cumsum(dur)
            starts_item = np.repeat(np.r_[0.0, ends[np.cumsum(ln)[:-1] - 1]], ln)
            sp = np.empty((r1 - r0, 2))
            sp[:, 0] = np.round(ends - dur - starts_item, 3)
            sp[:, 1] = np.round(ends - starts_item, 3)
            out = {"items": (i0, i1), "rows": (r0, r1), "spans": sp}

            def full(x):  # into the full width (norms are kept)
                return x @ basis if basis is not None else x

            if audio:
                out["audio"], out["audio_clip"] = full(a), full(ca)
            if i0 < n_video:
                nv = min(i1, n_video) - i0
                out["video"] = full(v[: int(offsets[i0 + nv]) - r0])
                out["video_clip"] = full(cv[:nv])
            yield out

    return lens, chunks()


def synth_embeddings(
    n_items: int,
    *,
    seed: int = 0,
    config: SynthConfig | None = None,
    dtype: Any = np.float32,
    modalities: tuple[str, ...] = ("audio", "video"),
    video_items: int | None = None,
    **overrides: Any,
) -> dict[str, SegmentSet]:
    """Structured synthetic segment embeddings for *n_items* items.

    Parameters
    ----------
    n_items : int
    seed : int
    config : SynthConfig, optional
        Parameters; keyword *overrides* (``noise=0.5``, ``dim=64``...) replace fields.
    dtype : {np.float32, np.float16}
        Storage type of the returned embeddings.
    modalities : tuple of str
        Which sides to return.
    video_items : int, optional
        Keep only the first *video_items* items' video side (queries of a benchmark
        against a large catalog); the audio side always has every item.

    Returns
    -------
    dict
        ``{"audio": SegmentSet, "video": SegmentSet}`` with ids ``item00000``...,
        spans in seconds and clip embeddings. Item ``i``'s video matches item ``i``'s
        track.
    """
    cfg = SynthConfig(**{**(config.__dict__ if config else {}), **overrides}) if overrides or config is None \
        else config
    cfg.check()
    if n_items < 1:
        raise ParameterError(f"n_items must be >= 1, got {n_items}")
    dtype = np.dtype(dtype)
    lens, chunks = synth_chunks(n_items, seed=seed, config=cfg, video_items=video_items)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    d = cfg.dim
    n_video = n_items if video_items is None else min(n_items, int(video_items))
    rows_a, rows_v = int(offsets[-1]), int(offsets[n_video])
    audio = np.empty((rows_a, d), dtype=dtype) if "audio" in modalities else None
    video = np.empty((rows_v, d), dtype=dtype) if "video" in modalities else None
    clip_a = np.empty((n_items, d), dtype=dtype) if "audio" in modalities else None
    clip_v = np.empty((n_video, d), dtype=dtype) if "video" in modalities else None
    spans = np.empty((rows_a, 2))
    for ch in chunks:
        i0, i1, r0, r1 = ch["items"][0], ch["items"][1], ch["rows"][0], ch["rows"][1]
        spans[r0:r1] = ch["spans"]
        if audio is not None:
            audio[r0:r1] = ch["audio"]
            clip_a[i0:i1] = ch["audio_clip"]
        if video is not None and "video" in ch:
            nv = len(ch["video_clip"])
            video[r0:r0 + len(ch["video"])] = ch["video"]
            clip_v[i0:i0 + nv] = ch["video_clip"]
    ids = [f"item{i:05d}" for i in range(n_items)]
    sources = [f"synthetic/{x}.mp4" for x in ids]
    shas = [hashlib.sha256(x.encode()).hexdigest() for x in ids]
    out = {}
    if audio is not None:
        out["audio"] = SegmentSet(audio, offsets, spans=spans, clip=clip_a, ids=ids, sources=sources, sha256s=shas,
                                  modality="audio")
    if video is not None:
        out["video"] = SegmentSet(video, offsets[: n_video + 1], spans=spans[:rows_v], clip=clip_v, ids=ids[:n_video],
                                  sources=sources[:n_video], sha256s=shas[:n_video], modality="video")
    return out


def synth_catalog(
    path: str | os.PathLike,
    n_items: int,
    *,
    seed: int = 0,
    dtype: str = "float32",
    config: SynthConfig | None = None,
    **overrides: Any,
) -> Path:
    """Write a synthetic catalog file (as ``vmtool embed`` would), atomically.

    It holds the items, their clip and segment embeddings for both modalities (with
    ``spans``), the segmentation ``synthetic`` and the root attribute ``model``.
    It has no stored model, so it cannot process a raw media query.

    Parameters
    ----------
    path : path
        The catalog to write.
    n_items : int
    seed : int
    dtype : {"float32", "float16"}
        Storage type of the embeddings.
    config, **overrides
        As in :func:`synth_embeddings` (e.g. ``seg_range=(8, 16), dim=512, noise=1.0``).

    Returns
    -------
    Path
    """
    from vmtool.atomic import atomic_output
    from vmtool.store import CollectionWriter, Item

    if dtype not in ("float32", "float16"):
        raise ParameterError(f"dtype must be float32 or float16, got {dtype!r}")
    cfg = SynthConfig(**{**(config.__dict__ if config else {}), **overrides})
    sets = synth_embeddings(n_items, seed=seed, config=cfg, dtype=np.dtype(dtype))
    audio, video = sets["audio"], sets["video"]
    n = len(audio)
    ends = audio.spans[audio.offsets[1:] - 1, 1]
    params = {"n_items": n_items, "seed": seed, "dtype": dtype, **{k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in cfg.__dict__.items()}}
    # The generator is recorded under the module name it had when these files were first
    # written (vmtool.ranking.synthetic); kept, so a seed still gives the same catalog.
    seg_cfg = {"generator": "vmtool.ranking.synthetic"}
    out = Path(path)
    with atomic_output(out) as tmp:
        with CollectionWriter(tmp, config={"config_version": 1, "synthetic": params}, command="",
                              display_path=out) as w:
            for i in range(n):
                w.add(Item(id=audio.ids[i], source=audio.sources[i], sha256=audio.sha256s[i],
                           duration=float(ends[i]), has_audio=True, has_video=True, fps=25.0, sample_rate=44100), {})
            w.flush()
            bounds = [audio.spans_of(i)[1:, 0] for i in range(n)]
            w.write_element("segmentations", "synthetic", bounds, dim=None, dtype=np.float64, present=[True] * n,
                            attrs={"modality": "none", "extractor": "synthetic", "version": "1", "config": seg_cfg})
            for s in (audio, video):
                mod = s.modality
                common = {"modality": mod, "extractor": "vmtool-synthetic", "model_sha256": "synthetic"}
                w.write_element("embeddings", mod, [s.clip[i:i + 1] for i in range(n)], dim=cfg.dim, dtype=dtype,
                                attrs={**common, "level": "clip"}, present=[True] * n)
                w.write_element("embeddings", f"{mod}_segments", [s.segments(i) for i in range(n)], dim=cfg.dim,
                                dtype=dtype, attrs={**common, "level": "segment", "segmentation": "synthetic"},
                                present=[True] * n, companions={"spans": [s.spans_of(i) for i in range(n)]})
            w.set_attr("model", {
                "sha256": "synthetic", "name": "synthetic", "dim": cfg.dim, "level": "segment",
                "config": {"generator": "vmtool.ranking.synthetic.synth_catalog", **params},
                "features": None, "segmentation": {"method": "synthetic", "config": seg_cfg, "version": "1"},
            })
    return out
