"""Synthetic features files with a known audio-video association (tests, benchmarks).

Each item has a hidden trajectory ``z_t`` (a few dimensions, slowly varying, one
level per segment); its audio frames are ``z_t A + noise`` and its video frames
``tanh(z_t B) + noise`` for fixed random maps A and B, so the video of an item can be
matched to its audio only through z — learnable, not trivial. A ``fixed`` segmentation
with the item's true segment changes is stored too.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from vmtool.store import CollectionWriter, Item, RaggedArray

__all__ = ["synth_features"]


def synth_features(
    path: str | os.PathLike,
    n_items: int,
    *,
    audio_dim: int = 32,
    video_dim: int = 24,
    latent: int = 6,
    frames: tuple[int, int] = (8, 16),
    seconds_per_segment: float = 4.0,
    rate: float = 1.0,
    noise: float = 0.5,
    clip_level: bool = False,
    seed: int = 0,
    audio_only: int = 0,
    video_only: int = 0,
) -> None:
    """Write a features collection of *n_items* audio-visual items to *path*.

    Parameters
    ----------
    frames : (int, int)
        Range of frame rows per item (at *rate* Hz).
    seconds_per_segment : float
        Length of the stored ``fixed`` segments; z changes level at each segment.
    noise : float
        Std of the Gaussian noise added to each modality.
    clip_level : bool
        Store one vector per item (the mean frame) with ``level="clip"`` instead of frames.
    audio_only, video_only : int
        Extra items with only one modality (not training pairs).
    """
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(latent, audio_dim)) / np.sqrt(latent)
    B = rng.normal(size=(latent, video_dim)) / np.sqrt(latent)
    total = n_items + audio_only + video_only
    config = {"config_version": 1, "rate": float(rate), "synthetic": {"seed": seed, "latent": latent,
                                                                       "noise": noise}}
    level = "clip" if clip_level else "frame"
    with CollectionWriter(path, config=config) as w:
        for name, dim, mod in (("synth_audio", audio_dim, "audio"), ("synth_video", video_dim, "video")):
            w.declare("features", name, dim=dim, attrs={"modality": mod, "extractor": "synthetic", "version": "1",
                                                        "level": level})
        bounds_rows = []
        for i in range(total):
            n = int(rng.integers(frames[0], frames[1] + 1))
            seg_len = max(1, int(round(seconds_per_segment * rate)))
            n_seg = -(-n // seg_len)
            levels = rng.normal(size=(n_seg, latent))
            z = np.repeat(levels, seg_len, axis=0)[:n] + 0.3 * rng.normal(size=(n, latent))
            audio = z @ A + noise * rng.normal(size=(n, audio_dim))
            video = np.tanh(z @ B) + noise * rng.normal(size=(n, video_dim))
            has_a = i < n_items + audio_only
            has_v = i < n_items or i >= n_items + audio_only
            arrays = {}
            if has_a:
                a = audio.mean(0, keepdims=True) if clip_level else audio
                arrays[("features", "synth_audio")] = RaggedArray(a.astype(np.float32),
                                                                  np.nan if clip_level else rate)
            if has_v:
                v = video.mean(0, keepdims=True) if clip_level else video
                arrays[("features", "synth_video")] = RaggedArray(v.astype(np.float32),
                                                                  np.nan if clip_level else rate)
            duration = n / rate
            sha = hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()
            w.add(Item(f"item-{i:05d}", f"synthetic#{i}", sha, duration, has_a, has_v), arrays)
            bounds_rows.append(np.arange(1, n_seg, dtype=np.float64) * seg_len / rate)
        w.flush()
        w.write_element("segmentations", "fixed", bounds_rows, dim=None, dtype=np.float64,
                        present=[True] * total,
                        attrs={"modality": "none", "extractor": "fixed", "version": "1",
                               "config": {"method": "fixed", "window": seconds_per_segment, "min_duration": 0.0}})
