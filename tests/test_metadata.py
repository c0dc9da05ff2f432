"""Track metadata: tags read from generated media, the sheet join, tempo/key/loudness measured."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool import metadata as md
from vmtool import synth
from vmtool.cli import app
from vmtool.errors import FormatError
from vmtool.store import CollectionWriter, Item, open_collection

runner = CliRunner()
SR = 12000


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- synthetic tonal signals ---------------------------------------------------------------------
def _note(midi: int, dur: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    env = np.minimum(1.0, np.minimum(t / 0.01, (dur - t) / 0.05))
    return env * sum(0.5 ** h * np.sin(2 * np.pi * f0 * (h + 1) * t) for h in range(3))


def chords(progression: list[list[int]], dur: float = 1.0, sr: int = SR) -> np.ndarray:
    """Each chord (MIDI notes) held *dur* seconds, bass an octave below its first note."""
    parts = [sum(_note(m, dur, sr) for m in ch) + _note(ch[0] - 12, dur, sr) for ch in progression]
    y = np.concatenate(parts)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


# i - iv - V - i in A minor (A C E, D F A, E G# B, A C E) and I - IV - V - I in E flat major
A_MINOR = [[57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64]] * 2
E_FLAT = [[63, 67, 70], [68, 72, 75], [70, 74, 77], [63, 67, 70]] * 2


# --- keys ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, want", [
    ("Am", "Am"), ("A minor", "Am"), ("amin", "Am"), ("C", "C"), ("C major", "C"), ("Bb", "A#"),
    ("B♭m", "A#m"), ("Db", "C#"), ("F#m", "F#m"), ("8A", "Am"), ("8B", "C"), ("12A", "C#m"), ("Cb", "B"),
    ("H", None), ("", None), ("rock", None),
])
def test_normalize_key(text, want):
    assert md.normalize_key(text) == want


def test_key_scores_is_pearson_against_rotated_profiles():
    # by hand: chroma = one note (D); the D-minor score is the correlation of e_2 with the minor
    # profile rotated so its tonic falls on D: r = (p[0] - mean p) / (sqrt(sum (p - mean)^2) * sqrt(11/12))
    chroma = np.zeros(12)
    chroma[2] = 1.0
    p = md.KK_MINOR
    pc = p - p.mean()
    x = chroma - chroma.mean()
    r_hand = float(np.sum(np.roll(pc, 2) * x) / math.sqrt(np.sum(pc ** 2) * np.sum(x ** 2)))
    assert r_hand == pytest.approx((p[0] - p.mean()) / (math.sqrt(np.sum(pc ** 2)) * math.sqrt(11 / 12)))
    scores = md.key_scores(chroma)
    assert scores[12 + 2] == pytest.approx(r_hand)
    # a chroma equal to a rotated profile scores exactly 1 for that key, and best
    g_major = md.key_scores(np.roll(md.KK_MAJOR, 7))
    assert g_major[7] == pytest.approx(1.0) and int(np.argmax(g_major)) == 7


@pytest.mark.parametrize("prog, want", [(A_MINOR, "Am"), (E_FLAT, "D#")])
def test_estimate_key_on_tonal_signals(prog, want):
    key, strength = md.estimate_key(chords(prog), SR)
    assert key == want and strength > 0.6


def test_estimate_key_and_tempo_of_silence_are_missing():
    y = np.zeros(SR * 3, np.float32)
    assert md.estimate_key(y, SR) == (None, pytest.approx(math.nan, nan_ok=True))
    assert math.isnan(md.estimate_tempo(y, SR)) and math.isnan(md.loudness_dbfs(y))


def test_estimate_tempo_of_a_click_track():
    y, truth = synth.synth_music(duration=12.0, sr=SR, tempo=100.0, sections="A", seed=3)
    assert md.estimate_tempo(y, SR) == pytest.approx(100.0, rel=0.03)


def test_loudness_of_a_sine():
    t = np.arange(SR) / SR
    assert md.loudness_dbfs(0.5 * np.sin(2 * np.pi * 440 * t)) == pytest.approx(-9.031, abs=0.01)
    assert md.loudness_dbfs(np.sin(2 * np.pi * 440 * t)) == pytest.approx(-3.010, abs=0.01)


# --- tags on generated media -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """Tagged mp3, m4a, flac and ogg (Opus) files written with PyAV and tagged with mutagen."""
    mutagen = pytest.importorskip("mutagen")  # noqa: F841 - the test extra installs it
    from mutagen.flac import FLAC
    from mutagen.id3 import ID3, TBPM, TCON, TIT2, TKEY, TPE1, TSRC
    from mutagen.mp4 import MP4, MP4FreeForm
    from mutagen.oggopus import OggOpus

    d = tmp_path_factory.mktemp("tagged")
    y = chords(A_MINOR, dur=0.5)
    paths = {ext: synth.write_media(d / f"song_{ext}.{ext}", audio=y, sr=SR) for ext in ("mp3", "m4a", "flac", "ogg")}
    t = ID3()
    for frame in (TIT2(text="Night Drive"), TPE1(text="The Sines"), TCON(text="Synth Rock"), TBPM(text="97"),
                  TKEY(text="Bbm"), TSRC(text="GBAAA2600001")):
        t.add(frame)
    t.save(paths["mp3"])
    m = MP4(paths["m4a"])
    m["\xa9nam"], m["\xa9ART"], m["\xa9gen"], m["tmpo"] = ["Coast"], ["Mara"], ["Jazz"], [128]
    m["----:com.apple.iTunes:ISRC"] = [MP4FreeForm(b"USAAA2600002")]
    m["----:com.apple.iTunes:initialkey"] = [MP4FreeForm(b"F#m")]
    m.save()
    f = FLAC(paths["flac"])
    f["TITLE"], f["ARTIST"], f["BPM"], f["INITIALKEY"], f["ISRC"] = "Field", "Ola", "101", "E", "FRAAA2600003"
    f.save()
    o = OggOpus(paths["ogg"])
    o["TITLE"], o["ALBUM"], o["BPM"], o["KEY"] = "Tide", "Shore", "88.5", "D minor"
    o.save()
    return paths


def test_read_tags_of_each_container(tagged):
    assert md.read_tags(tagged["mp3"]) == {"title": "Night Drive", "artist": "The Sines", "genre": "Synth Rock",
                                           "bpm": 97.0, "key": "A#m", "isrc": "GBAAA2600001"}
    assert md.read_tags(tagged["m4a"]) == {"title": "Coast", "artist": "Mara", "genre": "Jazz", "bpm": 128.0,
                                           "key": "F#m", "isrc": "USAAA2600002"}
    assert md.read_tags(tagged["flac"]) == {"title": "Field", "artist": "Ola", "bpm": 101.0, "key": "E",
                                            "isrc": "FRAAA2600003"}
    assert md.read_tags(tagged["ogg"]) == {"title": "Tide", "album": "Shore", "bpm": 88.5, "key": "Dm"}


def test_untagged_file_gives_no_tags(music_wav):
    assert md.read_tags(music_wav) == {}


@pytest.fixture(scope="module")
def extracted(tagged, tmp_path_factory):
    d = tmp_path_factory.mktemp("meta-extract")
    sheet = d / "sheet.csv"
    sheet.write_text("file,title,label,year\nsong_mp3.mp3,Night Drive (Edit),Lab A,2024\n"
                     "song_flac,,Lab B,2021\nmissing.wav,X,Lab C,1999\n")
    out = d / "tracks.h5"
    res = run("extract", tagged["mp3"], tagged["m4a"], tagged["flac"], "-a", "handcrafted", "-v", "none",
              "--metadata", sheet, "-o", out)
    assert res.exit_code == 0, res.stderr
    return out, res


def test_extract_stores_tags_sheet_and_measurements(extracted):
    out, res = extracted
    assert "Warning: " in res.stderr and "1 row(s) match no item: missing.wav" in res.stderr
    assert "2 item(s) given metadata" in res.stderr
    with open_collection(out) as col:
        assert col.schema_version == "1.1"
        m = col.metadata()
        mp3 = m.item(col.index("song_mp3"))
        assert mp3["title"] == "Night Drive (Edit)" and mp3["artist"] == "The Sines"  # the sheet wins
        assert mp3["label"] == "Lab A" and mp3["year"] == 2024.0 and mp3["bpm"] == 97.0
        assert m.item(col.index("song_flac"))["title"] == "Field"  # an empty cell leaves the tag
        assert "label" not in m.item(col.index("song_m4a"))
        assert m.origins["title"] == "tag,sheet" and m.origins["label"] == "sheet"
        for i in range(len(col)):  # measured on every item, under their own names
            it = m.item(i)
            assert it["measured_key"] == "Am" and -30 < it["measured_loudness"] < -10
            assert -30 < it["measured_loudness_lufs"] < -5  # BS.1770 integrated loudness
        assert {m.origins[k] for k in md.MEASURED_FIELDS} == {"measured"}
        assert m.columns["year"].dtype == np.float64 and m.columns["label"].dtype == object


def test_info_shows_metadata(extracted):
    out, _ = extracted
    res = run("info", out, "--items", "--format", "json")
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    names = {e["name"]: e for e in d["metadata"]}
    assert names["title"]["items_with_value"] == 3 and names["measured_bpm"]["origin"] == "measured"
    assert d["items"][0]["metadata"]["artist"] == "The Sines"
    res = run("info", out, "--items")
    assert res.exit_code == 0 and "Night Drive (Edit)" in res.stdout and "measured" in res.stdout


def test_resume_grows_every_metadata_column(extracted, tagged, tmp_path):
    out, _ = extracted
    copy = tmp_path / "tracks.h5"
    copy.write_bytes(out.read_bytes())
    res = run("extract", tagged["ogg"], "-a", "handcrafted", "-v", "none", "--resume", "--no-measure",
              "-o", copy)
    assert res.exit_code == 0, res.stderr
    with open_collection(copy) as col:
        m = col.metadata()
        assert len(col) == 4 and all(len(c) == 4 for c in m.columns.values())
        ogg = m.item(col.index("song_ogg"))
        assert ogg["title"] == "Tide" and "measured_bpm" not in ogg


def test_writer_appends_metadata_in_batches(tmp_path):
    path = tmp_path / "c.h5"
    with CollectionWriter(path, flush_items=2) as w:
        for i in range(5):
            item = Item(f"t{i}", f"t{i}.wav", f"{i:064x}", 1.0, True, False)
            w.add(item, {}, {"title": f"T{i}"} if i != 1 else None)
        w.add(Item("late", "late.wav", "f" * 64, 1.0, True, False), {}, {"bpm": 90.0})
    with open_collection(path) as col:
        m = col.metadata()
        assert [m.value(i, "title") for i in range(6)] == ["T0", None, "T2", "T3", "T4", None]
        assert [m.value(i, "bpm") for i in range(6)] == [None] * 5 + [90.0]


def test_stale_metadata_column_is_a_format_error(tmp_path):
    path = tmp_path / "c.h5"
    with CollectionWriter(path) as w:
        w.add(Item("a", "a.wav", "a" * 64, 1.0, True, False), {}, {"title": "A"})
        w.add(Item("b", "b.wav", "b" * 64, 1.0, True, False), {}, {"title": "B"})
    with h5py.File(path, "r+") as f:
        f["metadata/title"].resize((1,))
    with open_collection(path) as col, pytest.raises(FormatError, match="'metadata/title' has 1 entries for 2 items"):
        col.metadata()


def test_merge_carries_metadata_and_origins(tmp_path):
    parts = []
    for k, (meta, cfg) in enumerate([({"title": "A", "bpm": 90.0}, "tag"), ({"label": "L"}, "sheet")]):
        p = tmp_path / f"part{k}.h5"
        with CollectionWriter(p) as w:
            w.add(Item(f"t{k}", f"t{k}.wav", f"{k:064x}", 1.0, True, False), {}, None)
            w.add(Item(f"u{k}", f"u{k}.wav", f"{k + 10:064x}", 1.0, True, False), {})
        with h5py.File(p, "r+") as f:
            md.set_values(f, {0: meta}, 2, origin=cfg)
        parts.append(p)
    out = tmp_path / "merged.h5"
    res = run("merge", *parts, "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    with open_collection(out) as col:
        m = col.metadata()
        assert col.ids == ["t0", "u0", "t1", "u1"]
        assert m.item(0) == {"title": "A", "bpm": 90.0} and m.item(2) == {"label": "L"} and m.item(1) == {}
        assert m.origins == {"title": "tag", "bpm": "tag", "label": "sheet"}


def test_beat_grid_of_a_synthetic_track():
    y, truth = synth.synth_music(duration=12.0, sr=SR, tempo=100.0, sections="A", seed=3)
    y = np.concatenate([np.zeros(int(0.25 * SR), np.float32), y])  # every beat 0.25 s later
    tempo, offset = md.estimate_beat_grid(y, SR)
    period = 60.0 / 100.0
    assert tempo == pytest.approx(100.0, rel=0.03)
    err = (offset - 0.25 + period / 2) % period - period / 2  # distance to the true grid, modulo a beat
    assert abs(err) < 0.04


def test_embed_carries_metadata_to_the_catalog_and_align_shows_it(tmp_path):
    from vmtool.synth import synth_features

    feats = tmp_path / "feats.h5"
    synth_features(feats, 12, seed=3)
    with open_collection(feats) as col:
        ids = col.ids
    with h5py.File(feats, "r+") as f:
        md.set_values(f, {i: {"title": f"Song {i}", "artist": "Band"} for i in range(12)}, 12, origin="sheet")
    res = run("train", feats, "-o", tmp_path / "m.pt", "--epochs", "1", "--level", "segment", "--segments", "fixed",
              "--audio-layers", "8", "--video-layers", "8", "-b", "12", "-q")
    assert res.exit_code == 0, res.output
    cat = tmp_path / "cat.h5"
    res = run("embed", feats, "--model", tmp_path / "m.pt", "-o", cat, "-q")
    assert res.exit_code == 0, res.output
    with open_collection(cat) as col:
        assert col.metadata().item(5) == {"title": "Song 5", "artist": "Band"}
        assert col.metadata().origins["title"] == "sheet"
    res = run("align", f"{cat}#{ids[2]}", f"{cat}#{ids[5]}", "-q")
    assert res.exit_code == 0, res.stderr
    assert f"{ids[5]}  Song 5 — Band" in res.stdout
    out = json.loads(run("align", f"{cat}#{ids[2]}", f"{cat}#{ids[5]}", "-q", "--format", "json").stdout)
    assert (out["query_title"], out["target_title"], out["target_artist"]) == ("Song 2", "Song 5", "Band")


def test_resume_with_only_a_sheet_updates_the_metadata(extracted, tagged, tmp_path):
    out, _ = extracted
    copy = tmp_path / "tracks.h5"
    copy.write_bytes(out.read_bytes())
    sheet = tmp_path / "new.csv"
    sheet.write_text("id,genre,rating\nsong_m4a,Bossa,4.5\n")
    res = run("extract", tagged["m4a"], "-a", "handcrafted", "-v", "none", "--resume", "--metadata", sheet,
              "-o", copy)
    assert res.exit_code == 0, res.stderr
    assert "0 item(s) added, 1 already present, 1 item(s) given metadata" in res.stderr
    with open_collection(copy) as col:
        m = col.metadata()
        assert m.item(col.index("song_m4a"))["genre"] == "Bossa" and m.value(col.index("song_m4a"), "rating") == 4.5
        assert m.value(col.index("song_mp3"), "label") == "Lab A"  # the earlier sheet's values stay
