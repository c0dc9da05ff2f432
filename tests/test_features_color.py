"""Tests of the colour/brightness/motion/edge extractor (vmtool.features.color)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmtool.errors import ParameterError
from vmtool.features.base import n_steps_for, pool_by_time
from vmtool.features.color import BATCH_FRAMES, ColorExtractor, frame_descriptors

W, H = 64, 36


def solid(rgb, w=W, h=H) -> np.ndarray:
    frame = np.empty((h, w, 3), dtype=np.uint8)
    frame[...] = np.asarray(rgb, dtype=np.uint8)
    return frame


def checkerboard(cell=4, w=W, h=H) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    on = ((yy // cell + xx // cell) % 2).astype(bool)
    return np.where(on[..., None], 255, 0).astype(np.uint8).repeat(3, axis=-1)


def describe(frame, ex=None) -> dict[str, float]:
    ex = ex or ColorExtractor()
    row = frame_descriptors(frame[None], hue_bins=ex.hue_bins, sat_bins=ex.sat_bins, val_bins=ex.val_bins)[0]
    return dict(zip(ex.columns, row.tolist()))


def pooled(frames, times, rate, n_steps, ex=None) -> np.ndarray:
    ex = ex or ColorExtractor()
    acc = ex.begin(None, rate=rate, n_steps=n_steps)
    for t, f in zip(times, frames):
        acc.push(t, f)
    return acc.finish().frames


def hue_part(d):
    return np.array([v for k, v in d.items() if k.startswith("hue_")])


# --- columns and parameters -------------------------------------------------------------------


def test_columns_match_dim_and_rows():
    ex = ColorExtractor()
    assert ex.dim == len(ex.columns) == 26
    assert ex.columns[:2] == ["hue_00", "hue_01"] and ex.columns[11] == "hue_11"
    assert ex.columns[12:20] == ["sat_0", "sat_1", "sat_2", "sat_3", "val_0", "val_1", "val_2", "val_3"]
    assert ex.columns[20:] == [
        "brightness_mean",
        "brightness_std",
        "saturation_mean",
        "colorfulness",
        "motion_energy",
        "edge_density",
    ]
    out = pooled([solid((10, 20, 30))] * 3, [0.0, 0.04, 0.08], 1.0, 1)
    assert out.shape == (1, ex.dim) and out.dtype == np.float32


def test_other_bin_counts_change_columns():
    ex = ColorExtractor(hue_bins=6, sat_bins=3, val_bins=11)
    assert ex.dim == 6 + 3 + 11 + 6
    assert ex.columns[6:9] == ["sat_0", "sat_1", "sat_2"]
    assert ex.columns[9] == "val_00" and ex.columns[19] == "val_10"
    out = pooled([solid((255, 0, 0))], [0.0], 1.0, 1, ex=ex)
    assert out.shape == (1, ex.dim)


def test_parameters_appear_in_config():
    ex = ColorExtractor(frame_size=(32, 18), hue_bins=6, sat_bins=3, val_bins=5)
    cfg = ex.config()
    assert cfg["name"] == "color" and cfg["modality"] == "video" and cfg["version"] == "1"
    assert cfg["frame_size"] == [32, 18]
    assert (cfg["hue_bins"], cfg["sat_bins"], cfg["val_bins"]) == (6, 3, 5)
    assert ex.frame_size == (32, 18)
    assert ColorExtractor().config()["frame_size"] == [64, 36]
    # the recorded config rebuilds the same extractor
    params = {k: v for k, v in cfg.items() if k not in ("name", "version", "modality")}
    assert ColorExtractor(**params).config() == cfg


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"frame_size": (2, 36)}, r"frame_size .* got \(2, 36\)"),
        ({"frame_size": (64,)}, r"frame_size .* got \(64,\)"),
        ({"frame_size": "64x36"}, r"frame_size .* got '64x36'"),
        ({"hue_bins": 0}, r"hue_bins must be a positive integer, got 0"),
        ({"sat_bins": 2.5}, r"sat_bins must be a positive integer, got 2.5"),
        ({"val_bins": True}, r"val_bins must be a positive integer, got True"),
        ({"gamma": 2}, r"takes no parameter\(s\) gamma"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        ColorExtractor(**kwargs)


def test_bad_frames():
    acc = ColorExtractor().begin(None, rate=1.0, n_steps=1)
    with pytest.raises(ParameterError, match=r"got shape \(36, 64\) dtype uint8"):
        acc.push(0.0, np.zeros((36, 64), np.uint8))
    with pytest.raises(ParameterError, match=r"dtype float32"):
        acc.push(0.0, np.zeros((36, 64, 3), np.float32))
    acc.push(0.0, solid((0, 0, 0)))
    with pytest.raises(ParameterError, match=r"frame shape changed within an item from \(36, 64, 3\) to \(18, 32, 3\)"):
        acc.push(0.04, solid((0, 0, 0), w=32, h=18))
    with pytest.raises(ParameterError, match=r"rate must be positive, got 0"):
        ColorExtractor().begin(None, rate=0, n_steps=1)


# --- colour -----------------------------------------------------------------------------------


def test_pure_red_hue_and_saturation():
    d = describe(solid((255, 0, 0)))
    assert d["hue_00"] == pytest.approx(1.0)
    assert hue_part(d).sum() == pytest.approx(1.0)
    assert d["sat_3"] == pytest.approx(1.0) and d["sat_0"] == 0.0
    assert d["val_3"] == pytest.approx(1.0)
    assert d["saturation_mean"] == pytest.approx(1.0)
    # Hasler & Suesstrunk on the [0, 1] scale: rg = 1, yb = 0.5, no spread
    assert d["colorfulness"] == pytest.approx(0.3 * math.sqrt(1.25), rel=1e-5)


@pytest.mark.parametrize(
    "rgb, column",
    [
        ((255, 0, 0), "hue_00"),
        ((255, 0, 20), "hue_00"),  # just below 360 degrees: bins are centred, still red
        ((255, 255, 0), "hue_02"),  # yellow, 60 degrees
        ((0, 255, 0), "hue_04"),  # green, 120 degrees
        ((0, 255, 255), "hue_06"),  # cyan, 180 degrees
        ((0, 0, 255), "hue_08"),  # blue, 240 degrees
        ((255, 0, 255), "hue_10"),  # magenta, 300 degrees
    ],
)
def test_hue_bins_are_centred_on_primaries(rgb, column):
    d = describe(solid(rgb))
    assert d[column] == pytest.approx(1.0)


@pytest.mark.parametrize("level", [0, 40, 128, 255])
def test_grey_has_no_hue_and_no_colourfulness(level):
    d = describe(solid((level, level, level)))
    assert hue_part(d).sum() == 0.0
    assert d["colorfulness"] == 0.0
    assert d["saturation_mean"] == 0.0 and d["sat_0"] == pytest.approx(1.0)


def test_dark_and_pale_pixels_are_not_chromatic():
    assert hue_part(describe(solid((20, 0, 0)))).sum() == 0.0  # value below the threshold
    assert hue_part(describe(solid((255, 245, 245)))).sum() == 0.0  # saturation below the threshold


def test_hue_part_sums_to_fraction_of_chromatic_pixels():
    frame = solid((128, 128, 128))
    frame[:, : W // 4] = (0, 0, 255)
    d = describe(frame)
    assert d["hue_08"] == pytest.approx(0.25)
    assert hue_part(d).sum() == pytest.approx(0.25)
    for prefix in ("sat_", "val_"):
        assert sum(v for k, v in d.items() if k.startswith(prefix)) == pytest.approx(1.0)


def test_colourfulness_grows_with_colour_contrast():
    half = solid((128, 128, 128))
    half[:, : W // 2] = (255, 0, 0)
    half[:, W // 2 :] = (0, 0, 255)
    assert describe(half)["colorfulness"] > describe(solid((255, 0, 0)))["colorfulness"] > 0.3


# --- brightness -------------------------------------------------------------------------------


def test_black_and_white_brightness():
    black, white = describe(solid((0, 0, 0))), describe(solid((255, 255, 255)))
    assert black["brightness_mean"] == 0.0 and black["val_0"] == pytest.approx(1.0)
    assert white["brightness_mean"] == pytest.approx(1.0) and white["val_3"] == pytest.approx(1.0)
    assert black["brightness_std"] == 0.0 and white["brightness_std"] == pytest.approx(0.0, abs=1e-6)
    # Rec. 601 luma: pure green is brighter than pure red, which is brighter than pure blue
    g, r, b = (describe(solid(c))["brightness_mean"] for c in ((0, 255, 0), (255, 0, 0), (0, 0, 255)))
    assert (g, r, b) == pytest.approx((0.587, 0.299, 0.114), abs=1e-5)


def test_half_black_half_white_brightness_std():
    frame = solid((0, 0, 0))
    frame[:, W // 2 :] = 255
    d = describe(frame)
    assert d["brightness_mean"] == pytest.approx(0.5, abs=1e-5)
    assert d["brightness_std"] == pytest.approx(0.5, abs=1e-5)


# --- motion -----------------------------------------------------------------------------------


def test_static_sequence_has_zero_motion():
    frames = [checkerboard()] * (2 * BATCH_FRAMES + 5)  # crosses batch boundaries
    times = np.arange(len(frames)) / 25
    out = pooled(frames, times, 25.0, len(frames))
    motion = out[:, ColorExtractor().columns.index("motion_energy")]
    assert np.all(motion == 0.0)


def test_alternating_frames_have_high_motion_across_batches():
    n = 2 * BATCH_FRAMES + 5
    frames = [solid((0, 0, 0)) if i % 2 == 0 else solid((255, 255, 255)) for i in range(n)]
    out = pooled(frames, np.arange(n) / 25, 25.0, n)  # one frame per step
    motion = out[:, ColorExtractor().columns.index("motion_energy")]
    assert motion[0] == 0.0  # the first frame has no predecessor
    np.testing.assert_allclose(motion[1:], 1.0, atol=1e-5)


def test_accumulator_rows_equal_one_batch():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3 * BATCH_FRAMES + 7, H, W, 3), dtype=np.uint8)
    out = pooled(list(frames), np.arange(len(frames)) / 25, 25.0, len(frames))
    np.testing.assert_allclose(out, frame_descriptors(frames), atol=1e-6)


def test_previous_frame_sets_first_motion():
    a, b = solid((0, 0, 0)), solid((255, 255, 255))
    assert frame_descriptors(b[None])[0, -2] == 0.0
    assert frame_descriptors(b[None], previous=a)[0, -2] == pytest.approx(1.0)


# --- edges ------------------------------------------------------------------------------------


def test_checkerboard_has_high_edge_density_and_flat_frame_none():
    assert describe(checkerboard(cell=4))["edge_density"] > 0.5
    assert describe(solid((90, 40, 200)))["edge_density"] == 0.0
    # a faint ramp (1 level per pixel) stays below the threshold
    ramp = np.repeat(np.arange(W, dtype=np.uint8)[None, :, None], H, axis=0).repeat(3, axis=-1)
    assert describe(ramp)["edge_density"] == 0.0


def test_single_edge_density():
    frame = solid((0, 0, 0))
    frame[:, W // 2 :] = 255
    # the two interior columns beside the edge, over the interior rows
    assert describe(frame)["edge_density"] == pytest.approx(2 / (W - 2))


# --- pooling ----------------------------------------------------------------------------------


def test_step_pooling_at_1hz_of_25fps():
    duration, fps = 4.4, 25
    n = int(duration * fps)
    times = np.arange(n) / fps
    levels = (np.arange(n) * 2).astype(np.uint8)
    frames = [solid((lv, lv, lv)) for lv in levels]
    n_steps = n_steps_for(duration, 1.0)
    out = pooled(frames, times, 1.0, n_steps)
    assert n_steps == math.ceil(duration) == 5
    assert out.shape == (5, ColorExtractor().dim)
    rows = frame_descriptors(np.stack(frames))
    for i in range(5):
        sel = (times >= i) & (times < i + 1)
        np.testing.assert_allclose(out[i], rows[sel].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(out, pool_by_time(times, rows, 1.0, n_steps), atol=1e-6)
    col = ColorExtractor().columns.index("brightness_mean")
    assert np.all(np.diff(out[:, col]) > 0)


def test_begin_takes_steps_from_info():
    class Info:
        duration = 2.3

    acc = ColorExtractor().begin(Info(), rate=2.0)
    acc.push(0.0, solid((1, 2, 3)))
    assert acc.finish().frames.shape == (5, 26)


# --- through the decoder ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def red_then_blue(tmp_path_factory):
    """A 2 s 64x36 25 fps H.264 video: the first second red, the second blue."""
    import av

    path = tmp_path_factory.mktemp("color") / "red_blue.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(50):
            rgb = (255, 0, 0) if i < 25 else (0, 0, 255)
            for packet in s.encode(av.VideoFrame.from_ndarray(solid(rgb), format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def test_decoded_video_red_then_blue(red_then_blue):
    from vmtool.media import iter_frames, probe

    ex = ColorExtractor()
    info = probe(red_then_blue)
    acc = ex.begin(info, rate=1.0)
    n = 0
    for t, (frame,) in iter_frames(red_then_blue, [ex.frame_size], info=info):
        assert frame.shape == (H, W, 3)
        acc.push(t, frame)
        n += 1
    out = acc.finish().frames
    assert n == 50
    assert out.shape == (n_steps_for(info.duration, 1.0), ex.dim)
    c = ex.columns.index
    red, blue = out[0], out[1]
    assert red[c("hue_00")] > 0.9 and red[c("hue_08")] < 0.05
    assert blue[c("hue_08")] > 0.9 and blue[c("hue_00")] < 0.05
    assert red[c("sat_3")] > 0.9 and blue[c("sat_3")] > 0.9
    assert red[c("brightness_mean")] > blue[c("brightness_mean")]  # Rec. 601: red 0.299, blue 0.114
    assert blue[c("motion_energy")] > red[c("motion_energy")]  # the cut falls in the second step
