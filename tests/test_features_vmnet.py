"""``vmnet-handcrafted``: VM-Net's 1,140-d clip vector, checked against its recipe."""

from __future__ import annotations

import numpy as np
import pytest

from vmtool.features import get_extractor
from vmtool.features.vmnet_handcrafted import (
    BLOCKS,
    SR,
    centred_excerpt,
    clip_vector,
    vmnet_columns,
    vmnet_frame_rows,
)


@pytest.fixture(scope="module")
def tone():
    t = np.arange(int(3.0 * SR)) / SR  # CQT (chroma_cens) downsamples 64x: 3 s keeps n_fft 512 inside
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)


def test_dimensions_follow_the_recipe():
    assert sum(n for _, n in BLOCKS) == 190  # per part
    cols = vmnet_columns()
    assert len(cols) == 1140 and cols[0] == "mean.harmonic.chroma_stft_00" and cols[-1] == "max.percussive.zero_crossing_rate"
    assert get_extractor("vmnet-handcrafted").dim == 1140 and get_extractor("vmnet-handcrafted").level == "clip"


def test_rows_are_librosa_blocks_in_db_relative_to_their_max(tone):
    import librosa

    rows = vmnet_frame_rows(tone)
    assert rows.shape[0] == 380
    harmonic, percussive = librosa.effects.hpss(tone)
    chroma = librosa.feature.chroma_stft(y=harmonic, sr=SR, n_fft=512, hop_length=256)
    n = rows.shape[1]
    np.testing.assert_allclose(rows[:12], librosa.power_to_db(chroma[:, :n], ref=np.max), atol=1e-4)
    zcr = librosa.feature.zero_crossing_rate(percussive, frame_length=512, hop_length=256)
    np.testing.assert_allclose(rows[-1:], librosa.power_to_db(zcr[:, :n], ref=np.max), atol=1e-4)
    assert rows.max() <= 0.0 and rows.max(axis=1).max() == 0.0  # each block peaks at 0 dB


def test_clip_vector_is_mean_variance_max_over_frames():
    rows = np.array([[1.0, 3.0], [-2.0, 0.0]])  # two rows, two frames
    # mean (2, -1), population variance (1, 1), max (3, 0)
    assert clip_vector(rows).tolist() == [2.0, -1.0, 1.0, 1.0, 3.0, 0.0]


def test_centred_excerpt():
    y = np.arange(10 * SR, dtype=np.float32)
    cut = centred_excerpt(y, 4.0)
    assert cut.size == 4 * SR and cut[0] == 3 * SR
    assert centred_excerpt(y, 0.0) is y and centred_excerpt(y[:SR], 4.0).size == SR


def test_extract_writes_a_clip_level_feature(tmp_path, music_wav):
    from vmtool.extract import ExtractConfig, extract
    from vmtool.store import open_collection

    out = tmp_path / "f.h5"
    extract([str(music_wav)], out, ExtractConfig(audio_features=["vmnet-handcrafted"], video_features=[]))
    with open_collection(out) as c:
        f = c.feature("vmnet-handcrafted")
        assert f.attrs["level"] == "clip" and np.asarray(f.rows(0)).shape == (1, 1140)  # what train uses as is
