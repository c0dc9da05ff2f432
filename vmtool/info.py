"""What a vmtool file holds, as a JSON-ready dictionary (``vmtool info``).

The dictionary's keys are a documented, stable interface (``docs/cli.md``):
new keys may be added in minor versions, none is removed or renamed.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.store import KIND_COLLECTION, RAGGED_GROUPS, Collection, read_kind

__all__ = ["describe", "INFO_VERSION"]

INFO_VERSION = 1


def describe(path: str | os.PathLike, *, items: bool = False) -> dict[str, Any]:
    """Describe a vmtool file.

    Parameters
    ----------
    path : path
    items : bool
        Include one entry per item (id, source, duration, modalities, sha256).

    Returns
    -------
    dict
        ``info_version``, ``path``, ``kind``, ``schema_version``, ``vmtool_version``,
        ``created``, ``command``, ``n_items``, ``total_duration`` (items of unknown duration count 0), ``modalities``
        (count per ``audio``/``video``/``audio+video``), one list per ragged group
        (``features``, ``curves``, ``segmentations``, ``events``, ``embeddings``) whose
        entries hold ``name``, ``modality``, ``dim``, ``rate``, ``rows``,
        ``items_with_data`` and the producer's ``extractor``/``version``, the label
        columns (``labels``: ``name``, ``kind``, ``items`` with a value, and ``classes``
        (value -> count) or ``min``/``max``), the number of known ``negatives``, the stored
        ``config`` and, when asked, ``items``.
        ``items_with_data`` and the producer's ``extractor``/``version``, ``metadata``
        (one entry per track-metadata field: ``name``, ``origin``, ``type``,
        ``items_with_value``), the stored ``config`` and, when asked, ``items`` (each
        with its ``metadata`` fields).

    For a model file (written by ``vmtool train``) the dictionary holds instead
    ``kind`` = ``vmtool-model``, ``version``, ``sha256``, ``parameters``, the
    ``model``, ``loss``, ``data`` and ``train`` configurations, the ``features`` and
    ``segmentation`` it expects and the ``training`` summary (epochs, best epoch and
    its validation metrics, seconds).

    Raises
    ------
    FormatError
        Not a vmtool file, or an unreadable version.
    """
    p = Path(path)
    from vmtool.models.checkpoint import is_model_file

    if p.is_file() and is_model_file(p):  # a model file (vmtool train): a torch checkpoint, not HDF5
        from vmtool.models.checkpoint import read_model_info

        d = read_model_info(p)
        return {"info_version": INFO_VERSION, "path": str(p), **{k: v for k, v in d.items() if k != "file"}}
    kind, version = read_kind(p)
    if kind != KIND_COLLECTION:  # other kinds (models...) describe their root attributes only
        import h5py

        with h5py.File(p, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
        return {"info_version": INFO_VERSION, "path": str(p), "kind": kind, "schema_version": version, "attrs": attrs}
    with Collection(p) as col:
        a = col.attrs
        n = len(col)
        mods = Counter(it.modalities for it in col.items()) if n else Counter()
        out: dict[str, Any] = {
            "info_version": INFO_VERSION,
            "path": str(p),
            "kind": kind,
            "schema_version": version,
            "vmtool_version": a.get("vmtool_version"),
            "created": a.get("created"),
            "command": a.get("command"),
            "n_items": n,
            "total_duration": float(np.nansum(col.column("duration"))) if n else 0.0,  # NaN: clip-level imports
            "modalities": dict(sorted(mods.items())),
        }
        for group in RAGGED_GROUPS:
            entries = []
            for name in col.names(group):
                r = col.ragged(group, name)
                counts = np.diff(r.offsets)
                entries.append({
                    "name": name,
                    "element": r.element,
                    "modality": r.modality,
                    "dim": r.dim,
                    "rate": r.rate_summary(),
                    "rows": r.n_rows,
                    "items_with_data": int(np.count_nonzero(counts)),
                    "extractor": r.attrs.get("extractor"),
                    "version": r.attrs.get("version"),
                })
            out[group] = entries
        labels = []
        for name in col.label_names():
            values = col.label(name)
            have = ~np.isnan(values) if values.dtype.kind == "f" else values != ""
            entry: dict[str, Any] = {"name": name, "kind": col.label_kind(name), "items": int(have.sum())}
            if entry["kind"] == "categorical":
                entry["classes"] = dict(sorted(Counter(values[have].tolist()).items()))
            else:
                entry["min"] = float(values[have].min()) if have.any() else None
                entry["max"] = float(values[have].max()) if have.any() else None
            labels.append(entry)
        out["labels"] = labels
        out["negatives"] = len(col.negatives())
        meta = col.metadata()
        out["metadata"] = meta.summary()
        out["config"] = col.config
        out["history"] = a.get("history", [])
        if items:
            out["items"] = [
                {**it.to_dict(), "metadata": meta.item(i)} for i, it in enumerate(col.items())
            ]
            for name in col.label_names():
                values = col.label(name)
                for entry, v in zip(out["items"], values.tolist()):
                    entry.setdefault("labels", {})[name] = None if v == "" or (isinstance(v, float) and np.isnan(v)) else v
    structure = _structure_summary(p)
    if structure is not None:
        out["structure"] = structure
    return out


def _structure_summary(p: Path) -> dict[str, Any] | None:
    """What ``vmtool analyze-structure`` wrote in the file: its settings and the ``all`` row."""
    import json

    import h5py

    with h5py.File(p, "r") as f:
        if "structure" not in f:
            return None
        g = f["structure"]
        try:
            config = json.loads(_plain(g.attrs.get("config", "{}")))
            aggregates = json.loads(_plain(g.attrs.get("aggregates", "{}")))
        except (TypeError, ValueError):
            return {"version": _plain(g.attrs.get("version"))}
        trackers = sorted(set(g["downbeat_tracker"].asstr()[()])) if "downbeat_tracker" in g else []
    allg = (aggregates.get("all") or [{}])[0]
    keys = [f"{s}_{k}" for s in ("s_seg", "s_bar", "s_beat", "s_bar_free") for k in ("mean", "chance")]
    keys += ["s_bar_free_offset_bars", "s_bar_free_offset_r"]
    return {
        "version": config.get("version"),
        "segments": config.get("segments"),
        "segment_boundary_times": config.get("segment_boundary_times"),
        "downbeats": config.get("downbeats"),
        "downbeat_tracker": config.get("downbeat_tracker"),
        "downbeat_trackers_of_clips": [t for t in trackers if t],
        "n_clips": allg.get("n_clips"),
        **{k: allg.get(k) for k in keys},
    }


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
