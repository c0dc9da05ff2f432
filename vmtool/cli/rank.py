"""``vmtool rank``: the catalog's best matches for one query."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.cli._common import (
    DeviceOpt,
    QuietOpt,
    RichProgress,
    VersionOpt,
    echo_json,
    error,
    handle_errors,
    info,
    print_table,
)
from vmtool.cli._ranking import Direction, QuerySegmentsOpt, method_callback

HELP = """Rank a catalog's tracks for videos (v2m), or its videos for tracks (m2v).

QUERY is an item of a vmtool file (FILE.h5#ITEM-ID: its embeddings are read from that file) or a media file, processed exactly as the catalog's items were (same features, segmentation and model, read from the catalog). With v2m the query's video embeddings are compared with the catalog's audio embeddings; with m2v the reverse.

Several queries are ranked in one run (the catalog, the model and the libraries are loaded once): the table shows one ranking per query, tsv gains a first column 'query', json is a list. A query that cannot be processed is reported and the others are still ranked (exit code 1 at the end).

Results show each track's title and artist when the catalog has them (vmtool extract reads the tags; --metadata joins a sheet). --where keeps only the items a filter accepts, before any distance is computed: 'bpm 90..120', 'duration ..180', 'key Am,C', 'genre ~ rock', 'artist != X', 'bpm >= 100' (repeatable: all apply). bpm and key are the tagged values, or the measured ones where there is no tag; an item without the filtered field is left out, and the count left out is reported on stderr.

Each result also gets its best section: where the track should start and end under the video (the video's length, or --length), placed by the alignment (or btrace's best diagonal for the non-aligning methods) and started on a beat (the catalog's bars or beats, else the beat grid measured at extract time; a '*' in the table marks a start not snapped, for want of beats).

--report writes one HTML page a music supervisor can act on (docs/report.md): the query's player, each result with title, artist, distance, tempo and key, a player that starts at its best section, and the alignment picture; --render-top N adds the rendered previews of the best N. Media are embedded, so the page can be e-mailed or archived; --report-media link references them by path instead, for catalogs whose tracks make the page too large.

Methods (see docs/methods-ranking.md): as Seg-VM-Net defines them clip, centroid, single, complete, trace, btrace, nw-dtw, sw-dtw; vmtool's normalised variants centroid-unit, trace-mean, btrace-mean (default); head ranks by the pair classifier of a BCE model (Prétet et al. 2021); the DP methods take an indel penalty as nw-dtw:0.1. Alignment methods also print the matched span of each result.

rhythm needs no model: it ranks tracks by how well their tempo and metre fit the video's cutting rhythm (its dominant shot duration against each track's beat and bar periods, and its cuts against the track's beats at their best offset). CATALOG.h5 may then be any vmtool file whose tracks have beats (vmtool segment -m bars or -m beats, or the beat grid vmtool extract measures); the video's cuts come from TransNetV2 (its stored shot likelihood, or run on the media). NAME+rhythm:W adds the rhythm fit to a learned distance, both z-scored over the candidates (btrace+rhythm:0.3).

\b
Examples:
  vmtool rank clip.mp4 catalog.h5
  vmtool rank catalog.h5#my-video catalog.h5 --exclude-self -k 5
  vmtool rank clip.mp4 catalog.h5 -m nw-dtw --prefilter 5000 --format tsv
  vmtool rank song.mp3 catalog.h5 --direction m2v --format json | jq '.results[0]'
  vmtool rank new/*.mp4 catalog.h5 -k 5 --format tsv > rankings.tsv
  vmtool rank clip.mp4 catalog.h5 --where 'bpm 90..120' --where 'key Am,C'
  vmtool rank cut.mp4 catalog.h5 --length 30 --hubness csls --format json
  vmtool rank clip.mp4 catalog.h5 -k 5 --report clip.html --render-top 3
  vmtool rank clip.mp4 tracks-with-bars.h5 -m rhythm
  vmtool rank clip.mp4 catalog.h5 -m btrace+rhythm:0.3
"""


class ReportMedia(str, enum.Enum):
    embed = "embed"
    link = "link"


class RankFormat(str, enum.Enum):
    table = "table"
    json = "json"
    tsv = "tsv"


def register(app: typer.Typer) -> None:
    app.command("rank", help=HELP, no_args_is_help=True)(rank_cmd)


@handle_errors
def rank_cmd(
    queries: Annotated[list[str], typer.Argument(metavar="QUERY...", help="Media files, or FILE.h5#ITEM-ID.",
                                                 show_default=False)],
    catalog: Annotated[Path, typer.Argument(metavar="CATALOG.h5", help="A catalog written by vmtool embed "
                                            "(-m rhythm: any vmtool file whose tracks have beats).",
                                            show_default=False)],
    method: Annotated[str, typer.Option("--method", "-m", metavar="METHOD[:INDEL][+rhythm:W]",
                                        callback=method_callback, help="Ranking method.")] = "btrace-mean",
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="Number of results.")] = 10,
    direction: Annotated[Direction, typer.Option("--direction", "-d", help="v2m: a video queries tracks; "
                                                 "m2v: a track queries videos.")] = Direction.v2m,
    prefilter: Annotated[Optional[int], typer.Option(
        "--prefilter", metavar="N", min=1,
        help="Rank by centroid first and re-rank only the best N with METHOD (large catalogs; "
             "see docs/methods-ranking.md for the speed/agreement trade-off). With CATALOG.h5.index "
             "(vmtool index) the N candidates are the items nearest by centroid in the index's sketch, ranked "
             "on their sketch rows; only the best of them are read from the catalog.")] = None,
    exclude_self: Annotated[bool, typer.Option(
        "--exclude-self", help="Leave out catalog items with the query's content (same file SHA-256).")] = False,
    hubness: Annotated[str, typer.Option(
        "--hubness", metavar="auto|none|csls[:K]",
        help="CSLS: correct each distance by the query's and the track's mean distance to their K nearest "
             "neighbours (the catalog's own videos for the tracks), pushing down tracks near every video. "
             "auto: csls:10 for clip, centroid, centroid-unit, btrace-mean, nw-dtw and sw-dtw (they found the "
             "right track more often with it on three demo catalogs), none for the other methods (btrace and "
             "trace lose with it), with --prefilter, for a streamed catalog and for a catalog without videos "
             "(docs/performance.md). "
             "The tracks' terms are computed once per catalog and kept in CATALOG.h5.csls.")
    ] = "auto",
    length: Annotated[Optional[float], typer.Option(
        "--length", metavar="SECONDS", min=0.1, show_default=False,
        help="Seconds of music needed (default: the query's length), for each result's best section.")] = None,
    where: Annotated[Optional[list[str]], typer.Option(
        "--where", metavar="FILTER", show_default=False,
        help="Keep only items matching FIELD [OP] VALUE (repeatable), e.g. 'bpm 90..120', 'genre ~ rock'.")] = None,
    report: Annotated[Optional[Path], typer.Option(
        "--report", metavar="FILE.html", dir_okay=False, show_default=False,
        help="Also write the rankings as one HTML page with players, best sections and alignment pictures.")] = None,
    report_media: Annotated[ReportMedia, typer.Option(
        "--report-media", help="embed: media inside the page (one file to send); link: by path relative to the "
                               "page.")] = ReportMedia.embed,
    render_top: Annotated[Optional[int], typer.Option(
        "--render-top", metavar="N", min=1, show_default=False,
        help="With --report: render the track under the video for each query's best N results.")] = None,
    fmt: Annotated[RankFormat, typer.Option("--format", "-f", help="Output format on stdout.")] = RankFormat.table,
    stream: Annotated[Optional[bool], typer.Option(
        "--stream/--in-memory", show_default=False,
        help="Read the catalog's segment embeddings from disk in chunks for each query (exact, bounded memory; "
             "no --hubness, no sections), or load them. Default: stream when they would take more than half "
             "the available memory.")] = None,
    device: DeviceOpt = "auto",
    query_segments: QuerySegmentsOpt = None,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.device import resolve_device
    from vmtool.errors import ParameterError, UsageError, VmtoolError
    from vmtool.filters import parse_filter
    from vmtool.query import CatalogRanker
    from vmtool.ranking.hubness import parse_hubness

    filters = [parse_filter(w) for w in where or []]  # a malformed filter fails before any work
    if render_top is not None and (report is None or render_top > k):
        raise UsageError("--render-top needs --report" if report is None else
                         f"--render-top {render_top} is more than the {k} results of --top")
    if report is not None:
        from vmtool.report import check_report_path

        check_report_path(report, [catalog, *queries])  # before any ranking
    try:
        hub = parse_hubness(hubness)
    except ParameterError as exc:
        raise UsageError(f"--hubness: {exc.reason}") from None
    ranker = CatalogRanker(catalog, method=method, k=k, direction=direction.value, prefilter=prefilter,
                           exclude_self=exclude_self, hubness=hub, length=length, filters=filters,
                           device=resolve_device(device), segments=query_segments, stream=stream,
                           queries=queries)
    selection, meta, index = ranker.selection, ranker.meta, ranker.index
    if selection is not None:
        per = "; ".join(f"{t}: {c}" for t, c in selection.excluded_by.items())
        info(f"--where: {selection.excluded} of {len(selection.keep)} items excluded ({per})", quiet)
    many = len(queries) > 1
    failures: list[str] = []
    outputs: list[dict] = []
    done: list = []  # the ranked queries, for --report
    header = ("query\t" if many else "") + \
        "rank\tid\tdistance\tstart\tend\tsource\ttitle\tartist\tsection_start\tsection_end\n"
    for query in queries:
        try:
            with RichProgress(enabled=not quiet) as progress:
                ranked = ranker.rank(query, progress=progress)
        except VmtoolError as exc:
            if not many:
                raise
            error(str(exc))
            failures.append(query)
            continue
        res, secs = ranked.ranking, ranked.sections
        if report is not None:
            done.append(ranked)
        if ranker.terms_note is not None and ranker.terms_note.startswith("computed"):  # once: the slow first time
            info(f"CSLS terms of the catalog's {'tracks' if ranker.target_modality == 'audio' else 'videos'}: "
                 f"{ranker.terms_note}", quiet)
            ranker.terms_note = None
        head = {"query": query, "query_source": ranked.item.sources[0], "catalog": str(catalog),
                "direction": direction.value}
        if fmt is RankFormat.json:
            d = res.to_dict()
            for r, rd, sec in zip(res.results, d["results"], secs):
                rd["title"], rd["artist"] = meta.value(r.index, "title"), meta.value(r.index, "artist")
                rd["section"] = None if sec is None else sec.to_dict()
            outputs.append({**head, **d})
        elif fmt is RankFormat.tsv:
            sys.stdout.write(header)  # once, before the first ranking: no header without data
            header = ""
            lead = f"{query}\t" if many else ""
            for r, sec in zip(res.results, secs):
                start, end = ("", "") if r.span is None else (f"{r.span[0]:.3f}", f"{r.span[1]:.3f}")
                title, artist = (meta.value(r.index, k) or "" for k in ("title", "artist"))
                s0, s1 = ("", "") if sec is None else (f"{sec.start:.3f}", f"{sec.end:.3f}")
                sys.stdout.write(f"{lead}{r.rank}\t{r.id}\t{r.distance:.6g}\t{start}\t{end}\t{r.source}"
                                 f"\t{title}\t{artist}\t{s0}\t{s1}\n")
        else:
            _table(res, meta, title=query if many else None, sections=secs)
        how = f"{res.method.label}" + (f" after a centroid prefilter of {res.prefilter}" if res.prefilter else "") \
            + (f" ({index.kind} index {index.path.name})" if index is not None else "") \
            + (" streamed from disk" if ranker.streamed else "") \
            + (f", corrected by {res.hubness}" if res.hubness != "none" else "")
        info((f"{query}: " if many else "") + f"{res.n_candidates} "
             f"{'tracks' if ranker.target_modality == 'audio' else 'videos'} "
             f"ranked with {how} in {res.seconds:.3g} s" + (f" ({res.excluded} excluded)" if res.excluded else ""),
             quiet)
    if fmt is RankFormat.json:
        echo_json(outputs if many else outputs[0])
    unrendered = _write_report(report, done, ranker, report_media.value, render_top or 0, quiet) \
        if report is not None and done else []
    if failures:
        info(f"{len(failures)} of {len(queries)} queries failed", quiet=False)
        raise typer.Exit(1)
    if unrendered:
        raise typer.Exit(1)


def _write_report(path, done, ranker, media, render_top, quiet) -> list[str]:
    from vmtool.report import MAIL_LIMIT, write_report

    with RichProgress(enabled=not quiet) as progress:
        rep = write_report(path, done, ranker, media=media, render_top=render_top, progress=progress)
    for failed in rep.failed_previews:
        error(f"preview not rendered: {failed}")
    info(f"wrote {rep.path} ({rep.size / 1e6:.1f} MB, {rep.results} results, media {rep.media}"
         + (f", {len(rep.previews)} previews" if render_top else "") + ")", quiet)
    if rep.media == "embed" and rep.size > MAIL_LIMIT:
        info(f"{rep.path} is {rep.size / 1e6:.0f} MB, too large for most e-mail; --report-media link keeps the "
             "media out of the page", quiet=False)
    return rep.failed_previews


def _table(res, meta=None, title: str | None = None, sections=None) -> None:
    from rich.table import Table

    t = Table(box=None, pad_edge=False, title=title, title_justify="left")
    aligns = res.method.aligns
    named = [k for k in ("title", "artist") if meta is not None and k in meta.columns]
    for col, just in (("rank", "right"), ("id", "left"), *((k, "left") for k in named), ("distance", "right")):
        t.add_column(col, justify=just)
    if aligns:
        t.add_column("start", justify="right")
        t.add_column("end", justify="right")
    shown = sections is not None and any(s is not None for s in sections)
    if shown:
        t.add_column("section", justify="right")
    t.add_column("source")
    for r in res.results:
        row = [str(r.rank), str(r.id), *(meta.value(r.index, k) or "-" for k in named), f"{r.distance:.4f}"]
        if aligns:
            row += ["-", "-"] if r.span is None else [f"{r.span[0]:.2f}", f"{r.span[1]:.2f}"]
        if shown:
            sec = sections[r.rank - 1]
            row.append("-" if sec is None else f"{sec.start:.2f}-{sec.end:.2f}" + ("" if sec.snap != "none" else "*"))
        t.add_row(*row, str(r.source))
    print_table(t)
