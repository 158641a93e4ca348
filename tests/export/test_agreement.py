"""export.quantize.agreement: the int8 report's numbers on inputs whose values are known by hand."""

import numpy as np
import pytest

from aaclip_med.export.quantize import agreement


def _outputs(maps, scores):
    return [np.asarray(maps, dtype=np.float32), np.asarray(scores, dtype=np.float32)]


def test_one_swapped_pair_of_four_scores_is_spearman_0_8():
    maps = np.arange(4 * 2 * 2, dtype=np.float32).reshape(4, 2, 2)
    report = agreement(_outputs(maps, [1, 2, 3, 4]), _outputs(maps * 2 + 1, [1, 2, 4, 3]))
    # 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60; maps linear in each other: Pearson 1
    assert report["score_spearman"] == pytest.approx(0.8)
    assert report["map_pearson"] == pytest.approx(1.0)
    assert report["map_max_abs_diff"] == pytest.approx(16.0)  # 2 * 15 + 1 - 15
    assert report["images"] == 4


def test_undefined_correlations_are_none():
    constant = _outputs(np.ones((1, 2, 2)), [0.5])
    report = agreement(constant, constant)
    assert report["map_pearson"] is None and report["score_spearman"] is None  # constant maps, one image
    assert report["map_max_abs_diff"] == 0.0
