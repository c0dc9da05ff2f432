"""Segment-level aggregation of frame rows (edge cases Seg-VM-Net's consumers rely on)."""

from __future__ import annotations

import numpy as np
import pytest

from vmtool.errors import ParameterError
from vmtool.segmentation.base import clean_boundaries
from vmtool.segmentation.aggregate import segment_features

X = np.arange(12, dtype=np.float32).reshape(6, 2)  # 6 rows at 1 Hz, row j = [2j, 2j + 1]


def test_no_boundary_is_one_segment_over_everything():
    out = segment_features(X, 1.0, np.array([]), 6.0, stats=("mean", "max"))
    np.testing.assert_allclose(out, [[5.0, 6.0, 10.0, 11.0]])


def test_segments_shorter_than_a_row_take_the_row_they_overlap():
    out = segment_features(X, 1.0, np.array([2.2, 2.6]), 6.0)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out[1], X[2])  # [2.2, 2.6) lies inside row 2


def test_overlap_weighting_and_var():
    out = segment_features(X, 1.0, np.array([1.5]), 6.0, stats=("mean", "var"))
    # [0, 1.5): row 0 weight 1, row 1 weight 0.5
    np.testing.assert_allclose(out[0, :2], (X[0] + 0.5 * X[1]) / 1.5, rtol=1e-6)
    assert out[0, 2] == pytest.approx((1 / 1.5) * (0 - 2 / 3) ** 2 + (0.5 / 1.5) * (2 - 2 / 3) ** 2)


def test_final_partial_step_belongs_to_the_last_row():
    out = segment_features(X, 1.0, np.array([5.5]), 6.3)
    np.testing.assert_allclose(out[1], X[5])


def test_bad_arguments():
    with pytest.raises(ParameterError, match="unknown statistic"):
        segment_features(X, 1.0, np.array([]), 6.0, stats=("median",))
    with pytest.raises(ParameterError, match=r"shape \(n, d\)"):
        segment_features(np.zeros((0, 2)), 1.0, np.array([]), 6.0)


def test_clean_boundaries_rules():
    b, _ = clean_boundaries([0.0, 0.4, 3.0, 3.2, 3.0, 9.7, 10.0, 12.0], 10.0, min_duration=1.0)
    assert b.tolist() == [3.0]  # 0, the end, duplicates, too-close and outside times dropped
    b, lab = clean_boundaries([0.0, 2.0, 2.5, 6.0, 10.0], 10.0, min_duration=1.0, labels=[0, 1, 2, 0])
    assert b.tolist() == [2.0, 6.0] and lab.tolist() == [0, 1, 0]
