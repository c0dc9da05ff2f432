"""The study's output file: the clips' curves and events, and the per-clip table ``/structure``.

Layout in ``docs/format.md``, section *Structure analysis*.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vmtool.atomic import atomic_output
from vmtool.errors import FormatError
from vmtool.store import Collection, CollectionWriter, update_h5
from vmtool.structure.clip import COLUMNS, VERSION, ClipResult, StructureConfig

if TYPE_CHECKING:
    from vmtool.structure.study import StructureReport

__all__ = ["TABLE", "read_structure"]

#: name of the per-clip table group in the output file
TABLE = "structure"


def _write(out: Path, seed: Path | None, results: Sequence[ClipResult], report: StructureReport,
           config: StructureConfig, stored_attrs: dict[str, dict[str, Any]], command: str) -> None:
    from vmtool.features.transnet import TransNetExtractor
    from vmtool.segment import VERSION as SEG_VERSION, SegmentConfig

    n = len(results)
    computed = {m for r in results for m in r.computed}
    with atomic_output(out, seed=seed) as tmp:
        with CollectionWriter(tmp, config=None, command=command, display_path=out) as w:
            if seed is None:
                for r in results:
                    w.add(r.item, {})
                w.flush()

            def keep(group: str, name: str, method: str) -> bool:
                """In a seed file, an element nothing was computed for stays as it is."""
                return seed is not None and method not in computed and f"{group}/{name}" in stored_attrs

            if not keep("curves", "shot_likelihood", "transnet"):
                w.write_element(
                    "curves", "shot_likelihood", [r.likelihood for r in results],
                    rates=[r.likelihood_rate if r.likelihood is not None else math.nan for r in results],
                    replace=True, attrs=stored_attrs.get("curves/shot_likelihood") or {
                        "modality": "video", "extractor": TransNetExtractor.name,
                        "version": TransNetExtractor.version,
                        "description": TransNetExtractor.curve_names["shot_likelihood"]})
            w.write_element(
                "curves", "f_shot", [r.f_shot for r in results],
                rates=[config.rate if r.f_shot is not None else math.nan for r in results], replace=True,
                attrs={"modality": "video", "extractor": "analyze-structure", "version": VERSION,
                       "description": f"shot likelihood at {config.rate:g} Hz: sample j is the likelihood of a "
                                      f"cut at j / {config.rate:g} s (value of frame k placed at (k + 1) / fps; "
                                      "maximum where several frames meet, 0 where none)",
                       "config": {"rate": config.rate, "source": "curves/shot_likelihood"}})
            w.write_element(
                "events", "shots", [r.cuts for r in results], dtype=np.float64, replace=True,
                present=[r.cuts is not None for r in results],
                attrs={"modality": "video", "extractor": "transnet", "version": VERSION,
                       "description": "shot cuts: runs of the shot likelihood above the threshold",
                       "config": {"threshold": config.threshold, "min_duration": 0.0}})
            m = config.segments
            if not keep("segmentations", m, m):
                w.write_element(
                    "segmentations", m, [r.l_seg for r in results], dtype=np.float64, replace=True,
                    present=[r.l_seg is not None for r in results],
                    attrs=stored_attrs.get(f"segmentations/{m}") or {
                        "modality": "audio", "extractor": m, "version": SEG_VERSION,
                        "config": SegmentConfig(methods=(m,)).params(m)})
            if not keep("segmentations", "bars", "bars"):
                params = SegmentConfig(methods=("bars",), downbeats=config.downbeat_tracker or "librosa").params("bars")
                params["beats_per_bar"] = None
                bars = [r.bars for r in results]
                w.write_element(
                    "segmentations", "bars", [b.boundaries if b is not None else None for b in bars],
                    dtype=np.float64, replace=True, present=[b is not None for b in bars],
                    companions={
                        "tempo": [np.array([b.tempo]) if b is not None else None for b in bars],
                        "beats_per_bar": [np.array([b.beats_per_bar]) if b is not None else None for b in bars],
                        "beat_times": [b.beat_times if b is not None else None for b in bars],
                    },
                    attrs={"modality": "audio", "extractor": "bars", "version": SEG_VERSION, "config": params,
                           "summary": "beats per bar per item: the metadata's time signature where it gives a "
                                      "whole number, else estimated"})
        _write_table(tmp, results, report, config, n)


def _write_table(path: Path, results: Sequence[ClipResult], report: StructureReport,
                 config: StructureConfig, n: int) -> None:
    import json

    import h5py

    with update_h5(path) as f:
        if TABLE in f:
            del f[TABLE]
        g = f.create_group(TABLE)
        g.attrs["element"] = "table"
        g.attrs["version"] = VERSION
        g.attrs["n_items"] = n
        g.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
        g.attrs["metadata"] = report.metadata or ""
        g.attrs["aggregates"] = json.dumps({k: [s.to_dict() for s in v] for k, v in report.groups.items()})
        g.attrs["omitted"] = json.dumps({k: [[a, b] for a, b in v] for k, v in report.omitted.items()})
        g.attrs["columns"] = json.dumps({k: v[1] for k, v in COLUMNS.items()})
        for name, (kind, desc) in COLUMNS.items():
            vals = [r.value(name) for r in results]
            if kind == "str":
                ds = g.create_dataset(name, data=np.array([str(v) for v in vals], dtype=object),
                                      dtype=h5py.string_dtype("utf-8"))
            else:
                ds = g.create_dataset(name, data=np.asarray(vals, dtype=np.float64 if kind == "f8" else np.int64))
            ds.attrs["description"] = desc
        hists = [r.histogram if r.histogram is not None else np.zeros(0, dtype=np.int64) for r in results]
        g.create_dataset("shot_histogram", data=np.concatenate(hists).astype(np.int64) if hists else
                         np.zeros(0, dtype=np.int64))
        g.create_dataset("shot_histogram_offsets",
                         data=np.concatenate([[0], np.cumsum([h.size for h in hists])]).astype(np.int64))
        g["shot_histogram"].attrs["bin_width"] = float(config.bin_width)
        g["shot_histogram"].attrs["description"] = (
            "per item, counts of shot durations in bins centred on k * bin_width, k = 0, 1, ...")


def read_structure(path: str | os.PathLike) -> dict[str, Any]:
    """Read the per-clip table of a file written by :func:`analyze_structure`.

    Returns
    -------
    dict
        ``ids`` (list of str), ``columns`` (name -> np.ndarray, one entry per item),
        ``histograms`` (list of int arrays), ``bin_width``, ``config``, ``aggregates``.

    Raises
    ------
    FormatError
        Not a collection, no ``/structure`` group, or a table whose length is not the
        number of items (a stale table, e.g. after items were appended).
    """
    import json

    import h5py

    with Collection(path) as col:
        ids = col.ids
    with h5py.File(path, "r") as f:
        if TABLE not in f:
            raise FormatError(f"has no '{TABLE}' group (not written by vmtool analyze-structure)", path)
        g = f[TABLE]
        cols: dict[str, np.ndarray] = {}
        for name in g:
            if name.startswith("shot_histogram"):
                continue
            ds = g[name]
            cols[name] = np.array(ds.asstr()[()], dtype=object) if ds.dtype.kind == "O" else ds[()]
            if len(cols[name]) != len(ids):
                raise FormatError(f"dataset '{TABLE}/{name}' has {len(cols[name])} entries for {len(ids)} items "
                                  "(a stale table)", path)
        off = g["shot_histogram_offsets"][()]
        data = g["shot_histogram"][()]
        hists = [data[off[i]:off[i + 1]] for i in range(len(off) - 1)]
        return {
            "ids": ids,
            "columns": cols,
            "histograms": hists,
            "bin_width": float(g["shot_histogram"].attrs["bin_width"]),
            "config": json.loads(g.attrs["config"]),
            "aggregates": json.loads(g.attrs["aggregates"]),
        }
