"""``vmtool evaluate``: the papers' retrieval protocol on a catalog."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.cli._common import DeviceOpt, Format, FormatOpt, IdsOpt, QuietOpt, RichProgress, VersionOpt, echo_json, handle_errors, info, read_ids
from vmtool.cli._ranking import directions_callback, methods_callback, pair_scorer_for, scenarios_callback

HELP = """Evaluate retrieval on a catalog with the papers' protocol: R@1/10/25 and mean rank.

Every item's video queries every item's music (v2m), and the reverse (m2v); --ids restricts queries and candidates to the listed items (e.g. those held out from training); with --against all the listed items are queries ranked among every item of the catalog (what a user searching the whole catalog sees).

--hubness csls[:K] corrects each distance by the query's and the target's mean distance to their K nearest neighbours on the other side (CSLS; K = 10), which pushes down 'hub' targets that are near every query; 'none,csls' evaluates both (see docs/methods-ranking.md).

Prints, per direction and scenario, one row per method: R@1, R@10, R@25 (% of queries whose own item is among the first 1, 10, 25), mean rank with its 95% confidence interval, median rank, and the method's time (as in Seg-VM-Net's Tables III and IV).

Methods: see `vmtool rank --help`; 'all' is every embedding method (the papers' and vmtool's variants); head (a BCE model's pair classifier, as Prétet et al. 2021 rank it) is asked for by name.

When the catalog has labels (vmtool label), also label-match@1/10/25: the share (%) of each query's first K results whose label matches the query's — the emotion by default (video_emotion for videos, music_emotion for music, or one 'emotion' column), any column with --label — and the chance level of that share.

\b
Scenarios:
  vanilla          the items as they are
  crop-query       each query loses its first two segments (if it has more)
  stretch-targets  each target segment is repeated twice
  crop-stretch     both

\b
Examples:
  vmtool evaluate catalog.h5
  vmtool evaluate catalog.h5 -m clip,btrace,nw-dtw -s all --direction both
  vmtool evaluate catalog.h5 -m nw-dtw:0.1,sw-dtw:0.02 --format json --plot hist.png
  vmtool evaluate catalog.h5 -m clip --label polarity
  vmtool evaluate catalog.h5 --ids test-ids.txt --against all --hubness none,csls
"""


def register(app: typer.Typer) -> None:
    app.command("evaluate", help=HELP, no_args_is_help=True)(evaluate_cmd)


@handle_errors
def evaluate_cmd(
    catalog: Annotated[Path, typer.Argument(metavar="CATALOG.h5", help="A catalog written by vmtool embed.",
                                            show_default=False)],
    methods: Annotated[str, typer.Option("--method", "--methods", "-m", metavar="LIST", callback=methods_callback,
                                         help="Comma-separated methods (METHOD[:INDEL]) or 'all'.")] = "all",
    scenario: Annotated[Optional[list[str]], typer.Option(
        "--scenario", "-s", metavar="NAME", callback=scenarios_callback,
        help="vanilla, crop-query, stretch-targets, crop-stretch or all (repeatable; default: vanilla).",
        show_default=False)] = None,
    direction: Annotated[str, typer.Option("--direction", "-d", metavar="v2m|m2v|both", callback=directions_callback,
                                           help="Who queries whom.")] = "v2m",
    fmt: FormatOpt = Format.table,
    plot: Annotated[Optional[Path], typer.Option("--plot", dir_okay=False, metavar="FILE.png",
                                                 help="Histograms of the distances with the ground truth's rank (.png, .pdf, .svg...).")
                    ] = None,
    ranks: Annotated[bool, typer.Option("--ranks", help="JSON: add every query's ground-truth rank.")] = False,
    ids_file: IdsOpt = None,
    label: Annotated[Optional[str], typer.Option("--label", metavar="COLUMN", show_default=False,
                                                 help="Label column of label-match@K (default: the emotion, if any).")
                     ] = None,
    against: Annotated[str, typer.Option("--against", metavar="ids|all",
                                         help="Candidates of the --ids queries: the listed items, or every item.")
                       ] = "ids",
    hubness: Annotated[str, typer.Option("--hubness", metavar="LIST",
                                         help="Hubness corrections, comma-separated: none, csls, csls:K.")] = "none",
    stream: Annotated[Optional[bool], typer.Option(
        "--stream/--in-memory", show_default=False,
        help="Read the targets' segment embeddings from disk in chunks (bounded memory; segment methods, no "
             "--hubness), or load them. Default: stream when they would take more than half the available "
             "memory.")] = None,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    import time

    from vmtool.device import resolve_device
    from vmtool.ranking.evaluate import evaluate, parse_directions, parse_scenarios

    from vmtool.errors import UsageError
    from vmtool.ranking.hubness import parse_hubness

    scens = parse_scenarios(scenario)
    dirs = parse_directions(direction)
    from vmtool.errors import ParameterError

    try:
        hubs = [parse_hubness(h, allow_auto=False).label for h in hubness.split(",") if h.strip()]
    except ParameterError as exc:
        raise UsageError(f"--hubness: {exc.reason}") from None
    if against not in ("ids", "all"):
        raise UsageError(f"--against: use ids or all, got {against!r}")
    if plot is not None:
        from vmtool.ranking.plot import check_plot_path

        check_plot_path(plot)  # before minutes of ranking
    dev = resolve_device(device)
    t0 = time.perf_counter()
    scorer = pair_scorer_for(catalog, methods, dev)
    if stream is None:
        from vmtool.ranking.index import too_large

        from vmtool.ranking.methods import parse_methods

        # clip-level methods need the catalog in memory: only segment methods are streamed unasked
        stream = all(m.level == "segment" for m in parse_methods(methods)) and \
            too_large(catalog, ("audio", "video"))  # both sides are held at once
    if stream and hubs != ["none"]:
        raise UsageError("--hubness needs the catalog in memory; it cannot be streamed from disk (--in-memory)")
    with RichProgress(enabled=not quiet) as progress:
        if stream:
            from vmtool.ranking.index import evaluate_streamed

            ev = evaluate_streamed(str(catalog), methods, scenarios=scens, directions=dirs, device=dev,
                                   progress=progress, ids=read_ids(ids_file), label=label, against=against)
        else:
            ev = evaluate(str(catalog), methods, scenarios=scens, directions=dirs, device=dev, progress=progress,
                          ids=read_ids(ids_file), pair_scorer=scorer, label=label, hubness=hubs, against=against)
    if plot is not None:
        from vmtool.ranking.plot import plot_evaluation

        plot_evaluation(ev, plot)
    if fmt is Format.json:
        echo_json(ev.to_dict(ranks=ranks))
    else:
        _tables(ev)
    info(f"evaluated {len(ev.methods)} method(s) on {ev.n_items} items in {time.perf_counter() - t0:.1f} s"
         + (f"; wrote {plot}" if plot is not None else ""), quiet)


def _seconds(s: float) -> str:
    if s >= 60:
        return f"{int(s // 60)}'{s % 60:04.1f}\""
    return f"{s:.3g} s"


def _tables(ev) -> None:
    from rich.table import Table

    from vmtool.cli._common import print_table

    for direction in ev.directions:
        for scenario in ev.scenarios:
            cands = ev.n_candidates or ev.n_items
            t = Table(title=f"{direction.upper()}, {scenario}: {ev.n_items} queries, {cands} candidates",
                      title_justify="left", box=None, pad_edge=False)
            t.add_column("method")
            cols = ["R@1", "R@10", "R@25", "mean rank", "median", "time"]
            if ev.label is not None:
                cols[5:5] = ["LM@1", "LM@10", "LM@25", "chance"]
            for col in cols:
                t.add_column(col, justify="right")
            for m in ev.methods:
                for h in ev.hubness:
                    sc = ev.score(m.label, direction, scenario, h)
                    x = sc.metrics
                    name = m.label if h == "none" and ev.hubness == ["none"] else f"{m.label} ({h})"
                    row = [name, f"{x['r1']:.1f}", f"{x['r10']:.1f}", f"{x['r25']:.1f}",
                           f"{x['mean_rank']:.1f} ± {x['ci95']:.1f}", f"{x['median_rank']:g}", _seconds(sc.seconds)]
                    if ev.label is not None:
                        row[6:6] = [f"{x['label_match1']:.1f}", f"{x['label_match10']:.1f}",
                                    f"{x['label_match25']:.1f}", f"{x['label_chance']:.1f}"]
                    t.add_row(*row)
            print_table(t)
            sys.stdout.write("\n")
    if ev.label is not None:
        lab = ev.label
        what = lab["video"] if lab["video"] == lab["music"] else f"{lab['video']} of videos, {lab['music']} of music"
        sys.stdout.write(f"LM@K: % of the first K results whose label matches the query's ({what}); "
                         "chance: the same for a random ranking.\n")
    if any(m.name == "clip" for m in ev.methods) and set(ev.scenarios) - {"vanilla"}:
        sys.stdout.write("clip: clip embeddings describe whole items; the scenarios do not change them.\n")
