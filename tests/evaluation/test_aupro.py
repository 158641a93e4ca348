"""AUPRO against an independent brute-force threshold sweep, and an analytic value."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from aaclip_med.evaluation import metrics
from tests.evaluation._values import pixel_value


def _brute_force_aupro(maps, masks, limit):
    """Sweep every distinct score, average region overlaps, trapezoid up to the limit."""
    regions, negatives = [], []
    for score_map, mask in zip(maps, masks, strict=True):
        labels, count = ndimage.label(mask != 0, structure=np.ones((3, 3)))
        regions += [score_map[labels == i] for i in range(1, count + 1)]
        negatives.append(score_map[mask == 0])
    neg = np.concatenate(negatives)
    fpr, pro = [0.0], [0.0]
    for t in np.unique(np.concatenate([neg, *regions]))[::-1]:
        fpr.append(np.mean(neg >= t))
        pro.append(np.mean([np.mean(r >= t) for r in regions]))
    fpr, pro = np.array(fpr), np.array(pro)
    i = np.searchsorted(fpr, limit, side="right")
    x, y = list(fpr[:i]), list(pro[:i])
    if i < fpr.size and x[-1] < limit:
        a = (limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1])
        x.append(limit)
        y.append(pro[i - 1] + a * (pro[i] - pro[i - 1]))
    return np.trapezoid(y, x) / limit


def _masks_with_regions(rng, n=4, shape=(14, 15)):
    masks = np.zeros((n, *shape), np.uint8)
    for j in range(n):
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
            masks[j, y : y + rng.integers(1, 4), x : x + rng.integers(1, 5)] = 255
    masks[-1] = 0  # one normal image
    return masks


@pytest.mark.parametrize(("seed", "limit"), [(0, 0.3), (1, 0.3), (2, 0.05), (3, 0.3), (4, 1.0), (5, 0.5)])
def test_aupro_matches_brute_force(seed, limit):
    rng = np.random.default_rng(seed)
    masks = _masks_with_regions(rng)
    maps = (rng.integers(0, 4 + 6 * seed, masks.shape) / 5).astype(np.float32)  # ties
    maps[masks != 0] += np.float32(rng.random())
    expected = _brute_force_aupro(maps, masks, limit)
    assert pixel_value(maps, masks, "aupro", fpr_limit=limit) == pytest.approx(expected, abs=1e-3)


def test_aupro_of_constant_map_is_analytic():
    # A constant map jumps from (0, 0) to (1, 1): the PRO curve is the diagonal, so the area up
    # to FPR 0.3 is 0.3^2 / 2 and the normalised value 0.15.
    masks = np.zeros((2, 6, 6), np.uint8)
    masks[0, 1:3, 1:3] = 1
    masks[1, 4:6, 0:5] = 1
    assert pixel_value(np.ones((2, 6, 6)), masks, "aupro") == pytest.approx(0.15, abs=1e-12)


def test_regions_counted_per_connected_component():
    masks = np.zeros((1, 8, 8), np.uint8)
    masks[0, 0:2, 0:2] = 1
    masks[0, 2:4, 2:4] = 1  # touches diagonally: one region with 8-connectivity
    masks[0, 6:8, 6:8] = 1
    result, _ = metrics.pixel_metrics(np.random.default_rng(0).random((1, 8, 8)), masks)
    assert result.n_regions == 2
