"""``vmtool info``: what a vmtool file holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vmtool.cli._common import Format, FormatOpt, QuietOpt, VersionOpt, echo_json, handle_errors, print_table

HELP = """Show what a vmtool file holds.

Kind, schema version, items and their modalities, features (dimension, rate), curves, segmentations, embeddings, label columns and the extraction configuration. For a model file (vmtool train): its architecture, inputs, loss, training summary and validation scores.

\b
Examples:
  vmtool info catalog.h5
  vmtool info catalog.h5 --format json | jq '.features[].name'
  vmtool info model.pt
"""


def register(app: typer.Typer) -> None:
    app.command("info", help=HELP, no_args_is_help=True)(info_cmd)


@handle_errors
def info_cmd(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A vmtool file (.h5) or model file (.pt).", show_default=False)],
    fmt: FormatOpt = Format.table,
    items: Annotated[bool, typer.Option("--items", help="Also list every item.")] = False,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.info import describe

    d = describe(file, items=items)
    if fmt is Format.json:
        echo_json(d)
    else:
        _table(d)


def _fmt_rate(rate) -> str:
    if rate is None:
        return "-"
    if isinstance(rate, str):
        return rate
    return f"{rate:g} Hz"


def _model_rows(head, d: dict) -> None:
    m, data, loss, tr = d["model"], d["data"], d["loss"], d["training"]
    head.add_row("kind", f"vmtool-model (version {d['version']})")
    head.add_row("written by", f"vmtool {d.get('vmtool_version')} on {d.get('created')}")
    head.add_row("command", d.get("command") or "-")
    head.add_row("sha256", d["sha256"])
    if m.get("family") == "dpvm":
        classes = m.get("emotion_classes") or []
        head.add_row("model", f"DPVM, {m.get('fusion')} fusion; audio {m.get('audio_dim')}, video {m.get('video_dim')} "
                              f"-> {m.get('common')} -> content {'-'.join(map(str, m.get('content_layers', [])))}"
                              + (f", emotion {'-'.join(map(str, m.get('emotion_layers', [])))} over "
                                 f"{len(classes)} classes ({', '.join(map(str, classes[:8]))})" if classes else "")
                              + f"; {d['parameters']:,} parameters")
    else:
        head.add_row("model", f"{m.get('aggregation')} inputs; audio {m.get('audio_dim')} -> "
                              f"{'-'.join(map(str, m.get('audio_layers', [])))}, video {m.get('video_dim')} -> "
                              f"{'-'.join(map(str, m.get('video_layers', [])))}; {d['parameters']:,} parameters")
    seg = d.get("segmentation") or {}
    head.add_row("data", f"level {data.get('level')}"
                         + (f" on {seg.get('method')} segments" if seg else "")
                         + f"; statistics {','.join(data.get('stats', []))}; audio "
                         f"{'+'.join(data.get('audio_features', []))}, video {'+'.join(data.get('video_features', []))}")
    head.add_row("loss", ", ".join(f"{k} {v}" for k, v in loss.items()))
    best = tr.get("best", {})
    line = f"{tr.get('epochs')} epochs ({tr.get('stopped') or 'running'}), best epoch {tr.get('best_epoch')}"
    if "v2m_r10" in best:
        line += (f": val V2M R@1 {best['v2m_r1']:.1f}% R@10 {best['v2m_r10']:.1f}% mean rank "
                 f"{best['v2m_mean_rank']:.1f} on {int(best.get('val_items', 0))} items")
    head.add_row("training", line + f"; {tr.get('seconds', 0):.1f} s on {tr.get('device')}")
    head.add_row("resumable", "yes" if d.get("resumable") else "no")


def _table(d: dict) -> None:
    from rich.table import Table

    head = Table(box=None, show_header=False, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("file", d["path"])
    if d["kind"] == "vmtool-model":
        _model_rows(head, d)
        print_table(head)
        return
    head.add_row("kind", f"{d['kind']} (schema {d['schema_version']})")
    if d["kind"] != "collection":
        for k, v in d.get("attrs", {}).items():
            head.add_row(k, str(v))
        print_table(head)
        return
    head.add_row("written by", f"vmtool {d['vmtool_version']} on {d['created']}")
    head.add_row("items", f"{d['n_items']} ({', '.join(f'{k}: {v}' for k, v in d['modalities'].items()) or 'none'}), "
                          f"{d['total_duration']:.1f} s in all")
    head.add_row("command", d.get("command") or "-")
    print_table(head)
    for group in ("features", "curves", "segmentations", "events", "embeddings"):
        entries = d.get(group) or []
        if not entries:
            continue
        t = Table(title=group, title_justify="left", box=None, pad_edge=False)
        for col in ("name", "modality", "dim", "rate", "rows", "items"):
            t.add_column(col)
        for e in entries:
            t.add_row(e["name"], e.get("modality") or "-", "-" if e["dim"] is None else str(e["dim"]),
                      _fmt_rate(e["rate"]), str(e["rows"]), str(e["items_with_data"]))
        print_table(t)
    if d.get("labels"):
        t = Table(title="labels", title_justify="left", box=None, pad_edge=False)
        for col in ("column", "kind", "items", "values"):
            t.add_column(col)
        for e in d["labels"]:
            if e["kind"] == "categorical":
                values = ", ".join(f"{k} {v}" for k, v in list(e["classes"].items())[:8])
                values += ", ..." if len(e["classes"]) > 8 else ""
            else:
                values = "-" if e["min"] is None else f"{e['min']:g} .. {e['max']:g}"
            t.add_row(e["name"], e["kind"], str(e["items"]), values)
        print_table(t)
    if d.get("negatives"):
        print_table(f"negatives: {d['negatives']} known mismatched pair(s)")
    if d.get("metadata"):
        t = Table(title="metadata", title_justify="left", box=None, pad_edge=False)
        for col in ("name", "origin", "type", "items"):
            t.add_column(col)
        for e in d["metadata"]:
            t.add_row(e["name"], e["origin"], e["type"], str(e["items_with_value"]))
        print_table(t)
    st = d.get("structure")
    if st:
        t = Table(title="structure (vmtool analyze-structure)", title_justify="left", box=None, show_header=False,
                  pad_edge=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("l_seg", f"{st.get('segments')} (boundary times: {st.get('segment_boundary_times') or 'frame-start'})")
        t.add_row("downbeats", f"{st.get('downbeats')} -> {st.get('downbeat_tracker') or '-'}; clips' l_bar from "
                               f"{', '.join(st.get('downbeat_trackers_of_clips') or []) or '-'}")

        def sc(key: str) -> str:
            m, c = st.get(f"{key}_mean"), st.get(f"{key}_chance")
            return "-" if m is None else f"{m:.3f} (chance {c:.3f})" if c is not None else f"{m:.3f}"

        t.add_row("clips", str(st.get("n_clips")))
        for key, label in (("s_seg", "S(l_seg)"), ("s_bar", "S(l_bar)"), ("s_beat", "S(beats)"),
                           ("s_bar_free", "phase-free S(l_bar)")):
            t.add_row(label, sc(key))
        off = st.get("s_bar_free_offset_bars")
        if off is not None:
            t.add_row("phase-free offset", f"{off:+.2f} bar (r = {st.get('s_bar_free_offset_r'):.2f})")
        print_table(t)
    if "items" in d:
        from vmtool.metadata import format_fields

        have = {e["name"] for e in d.get("metadata") or []}
        shown = [n for n in ("title", "artist", "bpm", "key") if n in have]
        t = Table(title="items", title_justify="left", box=None, pad_edge=False)
        for col in ("id", "duration", "modalities", "fps", *shown, "measured", "source"):
            t.add_column(col)
        for it in d["items"]:
            m = it.get("metadata") or {}
            loud = "measured_loudness_lufs" if "measured_loudness_lufs" in m else "measured_loudness"  # older files
            t.add_row(it["id"], f"{it['duration']:.2f}", it["modalities"],
                      "-" if it["fps"] is None else f"{it['fps']:g}",
                      *[format_fields(m, (name,)) or "-" for name in shown],
                      format_fields(m, ("measured_bpm", "measured_key", loud)) or "-", it["source"])
        print_table(t)
