"""``vmtool rank --report``: a ranking as one HTML page a music supervisor can act on.

The page holds, per query, the query's own player and its top results, each with the
catalog's title and artist, the distance, tempo and key (tagged, or measured by
``vmtool extract``), a player that starts at the result's best section
(:mod:`vmtool.ranking.section`), the alignment picture that placed the section
(:func:`vmtool.ranking.plot.alignment_image`), and, with ``render_top``, the previews of
:func:`vmtool.render.render_preview` (the track under the picture).

Media are embedded as ``data:`` URIs by default (``media="embed"``): the page is one
file that can be e-mailed or archived and opened anywhere, with no network reference
(no CDN, no web font, no script). A player starts at its section through a media
fragment (``#t=start,end``, W3C Media Fragments URI 1.0), which browsers honour without
JavaScript, on ``data:`` URIs too. ``media="link"`` references the media files by their
path relative to the page instead (and writes rendered previews beside it), for
catalogs whose tracks make an embedded page too large to send (:data:`MAIL_LIMIT`).

The page is built in memory and written atomically (:mod:`vmtool.atomic`); nothing here
prints: what could not be shown (a media file that is missing, a preview that failed)
is noted on the page and returned in :class:`Report`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

from vmtool.atomic import atomic_output, check_output_path
from vmtool.errors import ParameterError, VmtoolError
from vmtool.progress import Progress

__all__ = ["MEDIA_MODES", "MAIL_LIMIT", "Report", "check_report_path", "write_report", "build_report"]

#: how media reach the page: embedded as data: URIs, or linked by relative path
MEDIA_MODES = ("embed", "link")
#: bytes above which an embedded page is said to be too large to e-mail (Gmail and
#: Outlook.com refuse attachments above 25 MB and 20 MB)
MAIL_LIMIT = 20_000_000
#: resolution of the alignment pictures (pixels per inch of matplotlib's figure)
PICTURE_DPI = 72

_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
         ".mkv": "video/x-matroska", ".ogv": "video/ogg", ".m4a": "audio/mp4", ".aac": "audio/aac",
         ".mp3": "audio/mpeg", ".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg",
         ".oga": "audio/ogg", ".opus": "audio/ogg"}


@dataclass
class Report:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    path : Path
        The page.
    size : int
        Its size in bytes.
    queries, results : int
        Queries shown and results shown (all queries).
    media : {"embed", "link"}
    missing : list of str
        Media files the page could not show (not found), as the catalog or query names them.
    previews : list of Path
        Rendered previews: the files written beside the page with ``media="link"``, the
        files the renderer wrote (then embedded and removed) with ``media="embed"``.
    failed_previews : list of str
        ``"QUERY #RANK: reason"`` for each preview the renderer refused.
    """

    path: Path
    size: int
    queries: int
    results: int
    media: str
    missing: list[str] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)
    failed_previews: list[str] = field(default_factory=list)


def check_report_path(path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Check the page's path before any ranking: writable, and none of *inputs*.

    *inputs* are the command's files (the catalog, media queries, the files of
    ``FILE.h5#ITEM-ID`` queries); a ``FILE.h5#ITEM-ID`` is reduced to its file.

    Raises
    ------
    VmtoolError
        Missing or read-only directory, or a directory given as the page.
    ParameterError
        The page would overwrite an input.
    """
    from vmtool.store import parse_item_ref

    files = []
    for spec in inputs:
        ref = parse_item_ref(spec)
        files.append(ref[0] if ref is not None else Path(spec))
    return check_output_path(path, inputs=files)


def write_report(
    path: str | os.PathLike,
    ranked: Sequence[Any],
    ranker: Any,
    *,
    media: str = "embed",
    render_top: int = 0,
    command: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Write the page of *ranked* queries (one section each) to *path*, atomically.

    Parameters
    ----------
    path : path
        The HTML file.
    ranked : sequence of vmtool.query.RankedQuery
        The queries ranked by *ranker*, in the order to show.
    ranker : vmtool.query.CatalogRanker
        What ranked them (the catalog, its metadata, direction and method).
    media : {"embed", "link"}
        ``embed``: every player's file inside the page as a ``data:`` URI; ``link``: by
        its path relative to the page (previews are then written beside the page, as
        ``<page stem>.q<query>-r<rank>.mp4``).
    render_top : int
        Render a preview (:func:`vmtool.render.render_preview`) for each query's best
        *render_top* results.
    command : str, optional
        The command line, shown at the top of the page.

    Returns
    -------
    Report

    Raises
    ------
    ParameterError
        An unknown *media*, or a negative *render_top*.
    VmtoolError
        The page cannot be written.
    """
    out = check_output_path(path)
    page, report = build_report(ranked, ranker, page_dir=out.parent.resolve(), page_stem=out.stem, media=media,
                                render_top=render_top, command=command, progress=progress)
    data = page.encode("utf-8")
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    report.path, report.size = out, len(data)
    return report


def build_report(
    ranked: Sequence[Any],
    ranker: Any,
    *,
    page_dir: str | os.PathLike = ".",
    page_stem: str = "report",
    media: str = "embed",
    render_top: int = 0,
    command: str | None = None,
    progress: Progress | None = None,
) -> tuple[str, Report]:
    """The page of :func:`write_report` as a string, and its :class:`Report` (``path`` and
    ``size`` left for the writer). *page_dir* is where the page will be (relative links
    and previews of ``media="link"`` start there)."""
    if media not in MEDIA_MODES:
        raise ParameterError(f"report media must be one of {', '.join(MEDIA_MODES)}, got {media!r}")
    if render_top < 0:
        raise ParameterError(f"render_top must be >= 0, got {render_top}")
    progress = progress or Progress()
    b = _Builder(ranker, Path(page_dir), page_stem, media, progress)
    sections = [b.query_section(qi, rq, render_top) for qi, rq in enumerate(ranked, start=1)]
    title = "vmtool rank: " + (ranked[0].query if len(ranked) == 1 else f"{len(ranked)} queries")
    page = _page(title, b.header(ranked, command), sections)
    rep = Report(Path(page_dir) / f"{page_stem}.html", 0, len(ranked), sum(len(r.ranking.results) for r in ranked),
                 media, b.missing, b.previews, b.failed_previews)
    return page, rep


# --- building the page ---------------------------------------------------------------------------------


class _Builder:
    def __init__(self, ranker, page_dir: Path, stem: str, media: str, progress: Progress):
        from vmtool.ranking import sides

        self.ranker, self.page_dir, self.stem, self.media, self.progress = ranker, page_dir, stem, media, progress
        self.catalog = Path(ranker.catalog)
        self.direction = ranker.direction
        self.qmod, self.tmod = sides(self.direction)
        self.meta = ranker.meta
        self.missing: list[str] = []
        self.previews: list[Path] = []
        self.failed_previews: list[str] = []

    # the parts of the page

    def header(self, ranked, command: str | None) -> str:
        from vmtool import __version__

        first = ranked[0].ranking if ranked else None
        facts = [("catalog", str(self.catalog)),
                 ("direction", "a video queries tracks (v2m)" if self.direction == "v2m"
                  else "a track queries videos (m2v)")]
        if first is not None:
            facts.append(("method", first.method.label + ("" if first.hubness == "none"
                                                          else f", corrected by {first.hubness}")))
        if command:
            facts.append(("command", command))
        facts.append(("written", f"{_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds').replace('+00:00', 'Z')}"
                                 f" by vmtool {__version__}"))
        return _dl(facts)

    def query_section(self, qi: int, rq, render_top: int) -> str:
        res = rq.ranking
        anchor = f"q{qi}"
        qfile = self._query_media(rq)
        player = self._player(qfile, self.qmod, rq.query, None, f"{anchor}-query")
        how = (f"{res.n_candidates} {'tracks' if self.tmod == 'audio' else 'videos'} ranked with {res.method.label}"
               + (f" after a centroid prefilter of {res.prefilter}" if res.prefilter else "")
               + (f", corrected by {res.hubness}" if res.hubness != "none" else "")
               + (f" ({res.excluded} excluded)" if res.excluded else ""))
        items = []
        for r, sec in zip(res.results, rq.sections or [None] * len(res.results)):
            preview = self._preview(qi, rq, qfile, r, sec) if r.rank <= render_top else None
            items.append(self._result(anchor, rq, r, sec, preview))
        listed = "\n".join(items)
        body = f'<ol class="results">\n{listed}\n</ol>' if items else '<p class="note">No result.</p>'
        return (f'<section class="query" id="{anchor}">\n<h2>{_e(rq.query)}</h2>\n'
                f'<div class="query-player">{player}</div>\n<p class="how">{_e(how)}</p>\n{body}\n</section>')

    def _result(self, anchor: str, rq, r, sec, preview: str | None) -> str:
        fields = self.meta.item(r.index) if self.meta is not None else {}
        title = fields.get("title") or r.id
        artist = fields.get("artist")
        facts = [("id", r.id), ("distance", f"{r.distance:.4f}")]
        for name, label in (("bpm", "tempo"), ("key", "key")):
            shown = _tagged_or_measured(fields, name)
            if shown:
                facts.append((label, shown))
        for name in ("album", "genre"):
            if fields.get(name):
                facts.append((name, str(fields[name])))
        if r.span is not None:
            facts.append(("matched", f"{r.span[0]:.2f}–{r.span[1]:.2f} s"))
        if sec is not None:
            facts.append(("best section", f"{sec.start:.2f}–{sec.end:.2f} s"
                          + (f" (starts on {_SNAP[sec.snap]})" if sec.snap in _SNAP else " (not on a beat)")))
        facts.append(("source", str(r.source)))
        rid = f"{anchor}-r{r.rank}"
        target = self._target_media(r)
        player = self._player(target, self.tmod, str(r.source), sec, f"{rid}-player")
        picture = self._picture(rq, r, placed=sec is not None)
        attrs = (f' data-id="{_e(r.id)}" data-rank="{r.rank}" data-distance="{r.distance:.6g}"'
                 + ("" if sec is None else f' data-section-start="{sec.start:.3f}" data-section-end="{sec.end:.3f}"'))
        head = f'<span class="rank">{r.rank}</span> <span class="title">{_e(title)}</span>' \
               + ("" if not artist else f' <span class="artist">— {_e(artist)}</span>')
        parts = [f'<li class="result" id="{rid}"{attrs}>', f"<h3>{head}</h3>", '<div class="cols">',
                 f'<div class="facts">{_dl(facts)}{player}</div>', picture, "</div>"]
        if preview is not None:
            parts.append(preview)
        parts.append("</li>")
        return "\n".join(parts)

    # media

    def _query_media(self, rq) -> Path | None:
        from vmtool.store import parse_item_ref, resolve_source

        ref = parse_item_ref(rq.query)
        src = rq.item.sources[0] if rq.item.sources else None
        if ref is None:
            return Path(rq.query)
        return None if not src else resolve_source(src, ref[0])

    def _target_media(self, r) -> Path | None:
        from vmtool.store import resolve_source

        return None if not r.source else resolve_source(r.source, self.catalog)

    def _player(self, file: Path | None, modality: str, name: str, sec, element_id: str) -> str:
        tag = "audio" if modality == "audio" else "video"
        if file is None or not file.is_file():
            self._missing(name if file is None else str(file))
            return f'<p class="note missing">Media not found: {_e(name if file is None else str(file))}</p>'
        frag = "" if sec is None else f"#t={sec.start:.3f},{sec.end:.3f}"
        src = self._src(file) + frag
        return f'<{tag} id="{element_id}" controls preload="metadata" src="{src}">{_e(file.name)}</{tag}>'

    def _src(self, file: Path) -> str:
        if self.media == "link":
            return quote(os.path.relpath(file.resolve(), self.page_dir))
        return _data_uri(file.read_bytes(), _MIME.get(file.suffix.lower(), "application/octet-stream"))

    def _missing(self, what: str) -> None:
        if what not in self.missing:
            self.missing.append(what)
            warnings.warn(f"{what}: media file not found; the report shows no player for it", RuntimeWarning,
                          stacklevel=4)

    # the alignment picture

    def _picture(self, rq, r, placed: bool) -> str:
        al = self._alignment(rq, r)
        if al is None:
            return '<p class="note">No alignment picture (no segment embeddings).</p>'
        from vmtool.ranking.plot import alignment_image

        png = alignment_image(al, dpi=PICTURE_DPI, title=f"{al.method.label}: distance {al.distance:.4g}",
                              query_label=f"{self.qmod} ({rq.item.ids[0]})", target_label=f"{self.tmod} ({r.id})")
        w, h = _png_size(png)
        alt = f"distance matrix of {rq.item.ids[0]} and {r.id} with the {al.method.label} path"
        return (f'<figure><img src="{_data_uri(png, "image/png")}" width="{w}" height="{h}" alt="{_e(alt)}">'
                f"<figcaption>Segments of the {'video' if self.qmod == 'video' else 'track'} (rows) against "
                f"those of the result (columns), and the {_e(al.method.label)} path"
                f"{' that placed the best section' if placed else ''}.</figcaption></figure>")

    def _alignment(self, rq, r):
        """The result's own alignment, else btrace's best diagonal (as its section was placed)."""
        if r.alignment is not None:
            return r.alignment
        from vmtool.ranking import align
        from vmtool.ranking.catalog import load_item

        q = rq.item
        if q.lengths[0] == 0:
            return None
        targets = self.ranker.targets
        if targets is not None and targets.lengths[r.index] > 0:
            segs, spans = targets.segments(r.index), targets.spans_of(r.index)
        else:  # read through an index, or ranked on clip embeddings only
            try:
                t = load_item(self.catalog, r.id, self.tmod)
            except VmtoolError:
                return None
            if t.lengths[0] == 0:
                return None
            segs, spans = t.segments(0), t.spans_of(0)
        return align(q.segments(0), segs, "btrace", query_spans=q.spans_of(0), target_spans=spans)

    # rendered previews

    def _preview(self, qi: int, rq, qfile: Path | None, r, sec) -> str:
        from vmtool.render import render_preview

        label = f"{rq.query} #{r.rank}"
        if self.direction == "v2m":
            video, track = qfile, f"{self.catalog}#{r.id}"
            start = None if sec is None else sec.start
            if start is None and self.ranker.rhythm_only:
                start = 0.0  # method rhythm places no section (and its file may hold no model to place one)
        else:  # a track queried videos: the result is the picture, the query the music
            video, track = self._target_media(r), rq.query
            start = None
        if video is None or not video.is_file():
            self.failed_previews.append(f"{label}: the video is not found ({video})")
            return f'<p class="note">No preview: the video is not found ({_e(str(video))}).</p>'
        self.progress.log(f"rendering the preview of {label}")
        with tempfile.TemporaryDirectory(prefix="vmtool-preview-") as tmp:
            out = (self.page_dir / f"{self.stem}.q{qi}-r{r.rank}.mp4") if self.media == "link" \
                else Path(tmp) / "preview.mp4"
            try:
                got = render_preview(video, track, out, start=start, fit="section", catalog=self.catalog,
                                     progress=self.progress, device=self.ranker.device)
            except VmtoolError as exc:
                self.failed_previews.append(f"{label}: {exc}")
                return f'<p class="note">No preview: {_e(str(exc))}</p>'
            path = Path(got.path)
            self.previews.append(path)
            src = self._src(path)
        padded = getattr(got, "padded", 0.0) or 0.0
        what = f"the track from {got.start:.2f} s under the video ({got.duration:.1f} s)" \
            + ("" if got.fit == "section" else ", its sections re-edited onto the shot changes") \
            + (", looped where the track ends" if got.looped else "") \
            + (f", {padded:.1f} s of silence at the end" if padded > 0 else "")
        return (f'<figure class="preview"><video id="q{qi}-r{r.rank}-preview" controls preload="metadata" '
                f'src="{src}"></video><figcaption>Preview: {_e(what)}.</figcaption></figure>')


_SNAP = {"bars": "a downbeat", "beats": "a beat", "measured-grid": "the measured beat grid"}


def _tagged_or_measured(fields: dict[str, Any], name: str) -> str | None:
    from vmtool.metadata import format_fields

    if fields.get(name) is not None:
        return format_fields(fields, [name])
    measured = f"measured_{name}"
    if fields.get(measured) is not None:
        return format_fields(fields, [measured]) + " (measured)"
    return None


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png_size(png: bytes) -> tuple[int, int]:
    # the IHDR chunk follows the 8-byte signature: length, type, then width and height
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _dl(facts: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return f"<dl>{rows}</dl>"


_CSS = """
:root { color-scheme: light dark; --fg: #1b1b1f; --muted: #5c5c66; --line: #d8d8de; --accent: #0f766e; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8ee; --muted: #a3a3ad; --line: #3a3a44; --accent: #5eead4; } }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       max-width: 1100px; margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; } h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; word-break: break-all; }
h3 { font-size: 1.05rem; margin: 0 0 .4rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .8rem; margin: 0 0 .6rem; }
dt { color: var(--muted); } dd { margin: 0; word-break: break-all; }
.query-player video { width: 400px; max-width: 100%; max-height: 360px; }
.query-player audio { width: 400px; max-width: 100%; }
.how, .note, figcaption { color: var(--muted); font-size: .9rem; }
ol.results { list-style: none; padding: 0; }
li.result { border-top: 1px solid var(--line); padding: 1rem 0; }
.rank { display: inline-block; min-width: 1.6rem; color: var(--accent); font-weight: 700; }
.artist { color: var(--muted); font-weight: 400; }
.cols { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.facts { flex: 1 1 320px; } .facts audio, .facts video { width: 100%; max-width: 480px; }
figure { margin: 0; flex: 0 1 auto; max-width: min(100%, 520px); } figure img { max-width: 100%; height: auto; }
figure.preview { margin-top: .8rem; } figure.preview video { width: 480px; max-width: 100%; max-height: 360px; }
"""


def _page(title: str, header: str, sections: Sequence[str]) -> str:
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="vmtool">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
{header}
<p class="note">Each player starts at the result's best section (the part of the track placed under the
video by the alignment, started on a beat) and stops at its end; press play again to hear on. Results
without a section (method rhythm, a streamed catalog, an index) play from the start.</p>
</header>
<main>
{body}
</main>
</body>
</html>
"""
