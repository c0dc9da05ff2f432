"""The study's inputs: media files and vmtool collections turned into one task per clip.

A collection's items bring what it already holds (shot likelihood, ``l_seg``, bars);
a media file is probed and everything else is computed from it. The same content
given twice is analysed once, and ids are made unique across the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vmtool.errors import FormatError, VmtoolError
from vmtool.store import Collection, Item, is_hdf5, read_kind, sha256_file, unique_ids
from vmtool.structure.clip import Bars, ClipTask, StructureConfig, _bars_stale, _meter_wanted
from vmtool.structure.metadata import Metadata

if TYPE_CHECKING:
    from vmtool.structure.study import StructureReport




def _stored(col: Collection, segments: str) -> list[dict[str, Any]]:
    """What a collection holds per item for the study."""
    n = len(col)
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    if "shot_likelihood" in col.names("curves"):
        lik = col.curve("shot_likelihood")
        for i in range(n):
            rows = lik.rows(i)
            if rows.size and math.isfinite(lik.rate(i)) and lik.rate(i) > 0:
                out[i]["likelihood"] = (np.asarray(rows, dtype=np.float32), lik.rate(i))
    names = col.names("segmentations")
    if segments in names:
        seg = col.ragged("segmentations", segments)
        for i in range(n):
            if seg.present(i):
                out[i]["l_seg"] = np.asarray(seg.rows(i), dtype=np.float64)
    if "bars" in names:
        bars = col.ragged("segmentations", "bars")
        cfg = bars.attrs.get("config")
        tracker = (cfg.get("downbeats") if isinstance(cfg, Mapping) else None) or "librosa"
        for i in range(n):
            if not bars.present(i):
                continue
            tempo = bars.companion("tempo", i)
            bpb = bars.companion("beats_per_bar", i)
            beats = bars.companion("beat_times", i)
            if tempo is None or bpb is None or beats is None or not len(tempo) or not len(bpb):
                continue  # written without its companions: compute again
            out[i]["bars"] = Bars(np.asarray(bars.rows(i), dtype=np.float64), float(tempo[0]),
                                  int(bpb[0]), np.asarray(beats, dtype=np.float64), tracker=str(tracker))
    return out


def _needs_source(task: ClipTask, config: StructureConfig) -> bool:
    want, _ = _meter_wanted(task.meta)
    it = task.item
    return (task.likelihood is None and it.has_video) or (it.has_audio and (
        task.l_seg is None or _bars_stale(task.bars, want, config)))


def _gather(inputs: Sequence[Path], config: StructureConfig, metadata: Metadata | None, keep_going: bool,
            report: StructureReport) -> tuple[list[ClipTask], Path | None, dict[str, dict[str, Any]]]:
    """Tasks of every clip of *inputs*; the seed collection (one vmtool input alone)."""
    from vmtool import media
    from vmtool.extract import check_inputs

    entries: list[tuple[Item, dict[str, Any]]] = []  # items in input order, with what is stored
    stored_attrs: dict[str, dict[str, Any]] = {}
    vm = [p for p in inputs if p.exists() and p.is_file() and is_hdf5(p)]
    seed = inputs[0] if len(inputs) == 1 and vm else None

    def fail(src: str, exc: VmtoolError) -> None:
        if not keep_going:
            raise exc
        report.failures.append((src, str(exc)))

    for p in inputs:
        if p in vm:
            kind, _ = read_kind(p)
            if kind != "collection":
                raise FormatError(f"is a vmtool {kind!r} file, expected a 'collection' file (attribute 'vmtool_kind')", p)
            with Collection(p) as col:
                for group, name in (("segmentations", config.segments), ("segmentations", "bars"),
                                    ("curves", "shot_likelihood")):
                    if name in col.names(group) and f"{group}/{name}" not in stored_attrs:
                        stored_attrs[f"{group}/{name}"] = col.ragged(group, name).attrs
                for it, st in zip(col.items(), _stored(col, config.segments)):
                    entries.append((it, st))
            continue
        try:
            todo, failures, _ = check_inputs([p], keep_going=keep_going)
        except VmtoolError as exc:  # pragma: no cover - check_inputs raises only without keep_going
            fail(str(p), exc)
            continue
        report.failures.extend(failures)
        for src, sha in todo:
            try:
                info = media.probe(src)
            except VmtoolError as exc:
                fail(src, exc)
                continue
            entries.append((Item(Path(src).stem, src, sha, float(info.duration), info.has_audio, info.has_video,
                                 float(info.fps), int(info.sample_rate)), {}))
    # one clip per content; ids unique across inputs
    seen: set[str] = set()
    kept: list[tuple[Item, dict[str, Any]]] = []
    for it, st in entries:
        if it.sha256 in seen and seed is None:
            report.warnings.append(f"{it.source}: the same content as an earlier input; analysed once")
            continue
        seen.add(it.sha256)
        kept.append((it, st))
    if seed is None:
        ids = unique_ids([it.id for it, _ in kept], [it.sha256 for it, _ in kept])
        for (it, _), new in zip(kept, ids):
            it.id = new
    tasks: list[ClipTask] = []
    for it, st in kept:
        t = ClipTask(label=it.source, item=it, with_metadata=metadata is not None)
        if "likelihood" in st:
            t.likelihood, t.likelihood_rate = st["likelihood"]
        t.l_seg = st.get("l_seg")
        t.bars = st.get("bars")
        if metadata is not None:
            t.meta = metadata.match(it.id, it.source)
        if st and _needs_source(t, config):
            src = Path(it.source)
            if src.is_file() and sha256_file(src) != it.sha256:
                t.source_problem = "source media changed since it was added (sha256 differs)"
        tasks.append(t)
    return tasks, seed, stored_attrs


def _metadata_warnings(metadata: Metadata, report: StructureReport) -> None:
    name = Path(metadata.path).name
    if metadata.missing:
        report.warnings.append(f"{name}: no column {', '.join(repr(m) for m in metadata.missing)}: "
                               "those fields are unknown for every clip")
    if metadata.duplicates:
        report.warnings.append(f"{name}: {len(metadata.duplicates)} file(s) listed twice, the first row is used "
                               f"({', '.join(metadata.duplicates[:5])}{', ...' if len(metadata.duplicates) > 5 else ''})")
    unused = metadata.unused()
    if unused:
        report.warnings.append(f"{name}: {len(unused)} of {len(metadata.rows)} row(s) match no input clip")
