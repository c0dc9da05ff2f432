"""``vmtool rank --report``: the HTML page of a ranking (vmtool.report).

The fast tests read the page as a browser would find it (tags, attributes, the
embedded bytes); the slow one opens it in headless Chromium.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
import types
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.errors import VmtoolError

runner = CliRunner()
N_ITEMS = 6


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def media_cat(tmp_path_factory):
    """A synthetic catalog of 6 items (5-9 s) with a real mp4 for each item beside it, and
    metadata: item00000 tagged (title, artist, bpm), item00001 measured (key, bpm)."""
    from vmtool.metadata import set_values
    from vmtool.ranking.catalog import load_catalog
    from vmtool.synth import make_clip, synth_catalog

    d = tmp_path_factory.mktemp("report")
    cat = synth_catalog(d / "cat.h5", N_ITEMS, seed=1, dim=16, seg_range=(4, 6), segment_seconds=(1.0, 2.0))
    a = load_catalog(cat, "audio")
    (d / "synthetic").mkdir()
    for i in range(N_ITEMS):
        make_clip(d / a.sources[i], duration=float(a.spans_of(i)[-1, 1]), seed=i, size=(64, 36), fps=10)
    with h5py.File(cat, "r+") as f:
        set_values(f, {0: {"title": "First <song>", "artist": "A & B", "bpm": 120.0},
                       1: {"measured_key": "Am", "measured_bpm": 97.4}}, N_ITEMS, origin="sheet")
    return cat


VOID = {"meta", "img", "br", "hr", "input", "link", "source", "area", "base", "col", "embed", "param", "track", "wbr"}


class Page(HTMLParser):
    """Every element with its attributes, the text of each result's title, and a check
    that every element opened is closed in order (the page parses as a tree)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.text: dict[str, str] = {}  # "li-id/class" -> text
        self._within: list[tuple[str, str]] = []
        self.feed(text)
        self.close()
        assert self.stack == [], f"unclosed elements {self.stack}"

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a))
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "li" and "result" in a.get("class", ""):
            self._li = a["id"]
        if tag == "span" and a.get("class") in ("title", "artist"):
            self._within.append((self._li, a["class"]))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        if tag == "span" and self._within:
            self._within.pop()

    def handle_data(self, data):
        if self._within:
            key = "/".join(self._within[-1])
            self.text[key] = self.text.get(key, "") + data

    def all(self, tag, **attrs):
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def data_bytes(src: str) -> bytes:
    head, payload = src.split(",", 1)
    assert head.startswith("data:") and head.endswith(";base64")
    return base64.b64decode(payload.split("#", 1)[0])


def rank_with_report(cat, out, *extra):
    q = f"{cat}#item00002"
    res = run("rank", q, cat, "-k", "4", "--length", "2", "-m", "sw-dtw", "--format", "json", "--report", out,
              *extra)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout), res


def test_page_has_one_entry_per_result_with_ids_titles_distances_and_sections(media_cat, tmp_path):
    out = tmp_path / "r.html"
    ranking, res = rank_with_report(media_cat, out)
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    items = page.all("li")
    results = ranking["results"]
    assert [li["data-id"] for li in items] == [r["id"] for r in results]
    assert [li["data-rank"] for li in items] == ["1", "2", "3", "4"]
    assert [float(li["data-distance"]) for li in items] == pytest.approx([r["distance"] for r in results], rel=1e-5)
    assert [float(li["data-section-start"]) for li in items] == pytest.approx(
        [r["section"]["start"] for r in results], abs=1e-3)
    assert any(r["section"]["start"] > 0 for r in results)  # sw-dtw places some section inside its track
    # each result's player starts at its section and stops at its end (a media fragment)
    for li, r in zip(items, results):
        player = page.all("audio", id=f"{li['id']}-player")[0]
        sec = r["section"]
        assert player["src"].endswith(f"#t={sec['start']:.3f},{sec['end']:.3f}")
        assert player["preload"] == "metadata" and "controls" in player
        media = media_cat.parent / r["source"]
        assert data_bytes(player["src"]) == media.read_bytes()  # the track itself, embedded
    # the catalog's title and artist (escaped in the page, read back as written), id where there is none
    by_id = {li["data-id"]: li["id"] for li in items}
    if "item00000" in by_id:
        assert page.text[f"{by_id['item00000']}/title"] == "First <song>"
        assert page.text[f"{by_id['item00000']}/artist"] == "— A & B"
        assert "<dt>tempo</dt><dd>120 BPM</dd>" in text
    if "item00001" in by_id:
        assert "<dt>key</dt><dd>Am (measured)</dd>" in text
    assert page.text[f"{by_id['item00002']}/title"] == "item00002"
    # the query's own player, and an alignment picture per result
    query = page.all("video", id="q1-query")[0]
    assert data_bytes(query["src"]) == (media_cat.parent / "synthetic/item00002.mp4").read_bytes()
    imgs = page.all("img")
    assert len(imgs) == len(results)
    for img in imgs:
        png = data_bytes(img["src"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int(img["width"]) > 100 and img["alt"]
    assert f"wrote {out}" in res.stderr and "4 results, media embed" in res.stderr


def test_page_references_nothing_outside_itself(media_cat, tmp_path):
    out = tmp_path / "r.html"
    rank_with_report(media_cat, out, "-q")
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    for tag, attrs in page.elements:
        for name in ("src", "href", "poster", "srcset", "data"):
            if name in attrs:
                assert attrs[name].startswith("data:"), (tag, name, attrs[name][:60])
    assert page.all("script") == [] and page.all("link") == [] and page.all("iframe") == []
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", text, re.I)
    assert not [p for p in os.listdir(tmp_path) if p != "r.html"]  # no temporary file left


def test_several_queries_one_section_each(media_cat, tmp_path):
    out = tmp_path / "r.html"
    qs = [f"{media_cat}#item{i:05d}" for i in (1, 4)]
    res = run("rank", *qs, media_cat, "-k", "3", "--report", out, "-q", "--format", "tsv")
    assert res.exit_code == 0, res.stderr
    page = Page(out.read_text(encoding="utf-8"))
    assert [s["id"] for s in page.all("section")] == ["q1", "q2"]
    rows = [line.split("\t") for line in res.stdout.splitlines()[1:]]
    assert [li["data-id"] for li in page.all("li")] == [r[2] for r in rows]
    assert [li["id"] for li in page.all("li")] == [f"q{q}-r{k}" for q in (1, 2) for k in (1, 2, 3)]


def test_link_mode_references_the_files_relative_to_the_page(media_cat, tmp_path):
    out = tmp_path / "pages" / "r.html"
    out.parent.mkdir()
    ranking, _ = rank_with_report(media_cat, out, "--report-media", "link", "-q")
    page = Page(out.read_text(encoding="utf-8"))
    players = page.all("audio")
    assert len(players) == len(ranking["results"])
    for p, r in zip(players, ranking["results"]):
        rel = unquote(p["src"].split("#", 1)[0])
        assert not rel.startswith(("data:", "/"))
        assert (out.parent / rel).resolve() == (media_cat.parent / r["source"]).resolve()
    assert out.stat().st_size < 200_000  # pictures only


def test_missing_media_is_said_and_the_page_still_written(media_cat, tmp_path):
    cat = tmp_path / "cat.h5"
    shutil.copy(media_cat, cat)  # without its media beside it
    out = tmp_path / "r.html"
    res = run("rank", f"{cat}#item00003", cat, "-k", "2", "--report", out, "-q")
    assert res.exit_code == 0, res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings and all("media file not found; the report shows no player for it" in w for w in warnings)
    page = Page(out.read_text(encoding="utf-8"))
    assert page.all("audio") == [] and page.all("video") == [] and len(page.all("img")) == 2
    assert "Media not found: " in out.read_text(encoding="utf-8")


def test_matplotlib_is_imported_only_for_a_report(media_cat, tmp_path):
    """Ranking without --report pays nothing for the page (matplotlib takes a second to import)."""
    import subprocess

    code = ("import sys; from typer.testing import CliRunner; from vmtool.cli import app; "
            f"r = CliRunner().invoke(app, ['rank', '{media_cat}#item00002', '{media_cat}', '-q']); "
            "print(r.exit_code, 'matplotlib' in sys.modules, 'vmtool.report' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert out.split() == ["0", "False", "False"]


# --- --render-top with a stand-in renderer (vmtool.render is built elsewhere) ---------------------------


@dataclass
class FakeRenderResult:
    path: Path
    start: float
    end: float
    duration: float
    fit: str
    edits: list
    looped: bool


def fake_renderer(calls: list, fail: str | None = None) -> types.ModuleType:
    """A module standing for vmtool.render: render_preview with its signature, writing a
    1 s mp4 with vmtool's encoder (or refusing with *fail*)."""
    from vmtool.media import write_media

    def render_preview(video, track, out, *, start=None, fit="section", keep_audio=0.0, catalog=None,
                       progress=None, device="auto"):
        calls.append({"video": Path(video), "track": track, "out": Path(out), "start": start, "fit": fit,
                      "catalog": catalog})
        if fail:
            raise VmtoolError(fail, track)
        frames = (np.full((36, 64, 3), 25 * k, dtype=np.uint8) for k in range(10))
        write_media(out, audio=np.zeros(22050, dtype=np.float32), frames=frames, fps=10)
        s = start or 0.0
        return FakeRenderResult(Path(out), s, s + 1.0, 1.0, fit, [], False)

    mod = types.ModuleType("vmtool.render")
    mod.render_preview = render_preview
    mod.RenderResult = FakeRenderResult
    return mod


def test_render_top_embeds_the_previews(media_cat, tmp_path, monkeypatch):
    calls: list = []
    embedded: list = []
    mod = fake_renderer(calls)
    real = mod.render_preview

    def keep_bytes(*args, **kw):
        got = real(*args, **kw)
        embedded.append(Path(got.path).read_bytes())
        return got

    mod.render_preview = keep_bytes
    monkeypatch.setitem(sys.modules, "vmtool.render", mod)
    out = tmp_path / "r.html"
    ranking, res = rank_with_report(media_cat, out, "--render-top", "2")
    results = ranking["results"]
    assert [c["track"] for c in calls] == [f"{media_cat}#{r['id']}" for r in results[:2]]
    assert all(c["video"] == media_cat.parent / "synthetic/item00002.mp4" for c in calls)
    assert [c["start"] for c in calls] == pytest.approx([r["section"]["start"] for r in results[:2]], abs=1e-3)
    assert all(c["fit"] == "section" and Path(c["catalog"]) == media_cat for c in calls)
    page = Page(out.read_text(encoding="utf-8"))
    previews = [page.all("video", id=f"q1-r{k}-preview") for k in (1, 2, 3)]
    assert [len(p) for p in previews] == [1, 1, 0]
    assert [data_bytes(p[0]["src"]) for p in previews[:2]] == embedded
    assert not any(c["out"].exists() for c in calls)  # rendered into a temporary directory, removed
    assert sorted(os.listdir(tmp_path)) == ["r.html"]
    assert "2 previews" in res.stderr


def test_render_top_link_mode_keeps_the_previews_beside_the_page(media_cat, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "vmtool.render", fake_renderer(calls))
    out = tmp_path / "r.html"
    rank_with_report(media_cat, out, "--render-top", "1", "--report-media", "link", "-q")
    assert sorted(os.listdir(tmp_path)) == ["r.html", "r.q1-r1.mp4"]
    page = Page(out.read_text(encoding="utf-8"))
    assert page.all("video", id="q1-r1-preview")[0]["src"] == "r.q1-r1.mp4"


def test_a_preview_that_fails_is_reported_and_the_page_kept(media_cat, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "vmtool.render", fake_renderer(calls, fail="the track is silent"))
    out = tmp_path / "r.html"
    res = run("rank", f"{media_cat}#item00002", media_cat, "-k", "2", "--render-top", "1", "--report", out, "-q")
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: preview not rendered: {media_cat}#item00002 #1: {calls[0]['track']}: "
                      "the track is silent"]
    assert "No preview: " in out.read_text(encoding="utf-8") and len(calls) == 1


def test_library_refuses_unknown_media_mode(media_cat):
    from vmtool.report import build_report

    with pytest.raises(VmtoolError, match="report media must be one of embed, link, got 'inline'"):
        build_report([], None, media="inline")


# --- in a real browser --------------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in (os.environ.get("VMTOOL_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


BROWSER_CHECK = """() => {
  const media = [...document.querySelectorAll('audio, video')];
  const imgs = [...document.querySelectorAll('img')];
  return {
    media: media.map(e => ({id: e.id, ready: e.readyState, time: e.currentTime, duration: e.duration,
                           error: e.error ? e.error.code : null})),
    imgs: imgs.map(e => ({complete: e.complete, width: e.naturalWidth})),
    sections: Object.fromEntries([...document.querySelectorAll('li.result')].map(
      li => [li.id + '-player', parseFloat(li.dataset.sectionStart)])),
  };
}"""


def open_in_chromium(page_path: Path, screenshot: Path) -> tuple[dict, list[str], list[str]]:
    """Open *page_path* in headless Chromium (system executable, driven by playwright), wait
    for every player to load its metadata, keep a screenshot; return the page's state (each
    media element, picture and section start), the console's lines and the URLs requested."""
    pw = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium executable on PATH (Debian: apt install chromium; or set VMTOOL_CHROMIUM)")
    logs, requests = [], []
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: logs.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: logs.append(f"requestfailed: {r.url[:80]}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_function("[...document.querySelectorAll('audio, video')]"
                                   ".every(e => e.readyState >= 1 || e.error)", timeout=120_000)
            state = page.evaluate(BROWSER_CHECK)
            page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    return state, logs, requests


def assert_loaded(state, logs, requests, n_media: int, n_imgs: int) -> None:
    assert len(state["media"]) == n_media
    for m in state["media"]:
        assert m["error"] is None and m["ready"] >= 1 and m["duration"] > 0, m
        if m["id"] in state["sections"]:  # a result's player sits at its section start
            assert m["time"] == pytest.approx(state["sections"][m["id"]], abs=0.05), m
    assert len(state["imgs"]) == n_imgs and all(i["complete"] and i["width"] > 100 for i in state["imgs"])
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert [line for line in logs if not line.startswith(("log:", "info:", "debug:"))] == []


@pytest.mark.slow
def test_report_in_headless_chromium(media_cat, tmp_path, monkeypatch):
    """The page as a user opens it: every player and picture loads, each result's player
    sits at its section start, nothing is logged as an error, nothing fetched from outside."""
    monkeypatch.setitem(sys.modules, "vmtool.render", fake_renderer([]))
    out = tmp_path / "r.html"
    rank_with_report(media_cat, out, "--render-top", "1", "-q")
    state, logs, requests = open_in_chromium(out, tmp_path / "report.png")
    assert_loaded(state, logs, requests, n_media=1 + 4 + 1, n_imgs=4)  # the query, 4 results, 1 preview
    assert any(t > 0 for t in state["sections"].values())
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.slow
def test_report_with_rendered_previews_in_headless_chromium(media_cat, tmp_path):
    """The same with vmtool.render's real previews (skipped until it is installed): each
    plays in the page and lasts the video's length."""
    pytest.importorskip("vmtool.render", reason="vmtool.render (vmtool render) is not in this tree")
    out = tmp_path / "r.html"
    rank_with_report(media_cat, out, "--render-top", "2", "-q")
    state, logs, requests = open_in_chromium(out, tmp_path / "report.png")
    assert_loaded(state, logs, requests, n_media=1 + 4 + 2, n_imgs=4)
    video = next(m for m in state["media"] if m["id"] == "q1-query")
    previews = [m for m in state["media"] if m["id"].endswith("-preview")]
    assert [m["id"] for m in previews] == ["q1-r1-preview", "q1-r2-preview"]
    assert [m["duration"] for m in previews] == pytest.approx([video["duration"]] * 2, abs=0.25)
