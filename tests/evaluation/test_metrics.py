"""Exact pixel/image metrics against scikit-learn, with ties, and the undefined cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from aaclip_med.evaluation import metrics
from aaclip_med.evaluation.accumulator import PixelAccumulator
from tests.evaluation._values import image_value, pixel_value


def _tied_data(seed: int, shape=(5, 16, 20), levels: int = 12):
    rng = np.random.default_rng(seed)
    maps = (rng.integers(-levels, levels, shape) / 7).astype(np.float32)  # many ties, negative values too
    maps[0, 0, 0] = -0.0
    masks = (rng.random(shape) < 0.15).astype(np.uint8) * 255
    masks[1] = 0  # a normal image
    return maps, masks


def _sk_f1_max(y, s):
    p, r, _ = precision_recall_curve(y, s)
    return float(np.max(2 * p * r / np.maximum(p + r, 1e-300)))


@pytest.mark.parametrize("seed", range(6))
def test_pixel_metrics_match_sklearn_with_ties(seed):
    maps, masks = _tied_data(seed, levels=3 + 5 * seed)
    result, reason = metrics.pixel_metrics(maps, masks)
    y, s = masks.ravel() != 0, maps.ravel()
    assert reason is None
    assert result.auroc == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    assert result.ap == pytest.approx(average_precision_score(y, s), abs=1e-6)
    assert result.f1_max == pytest.approx(_sk_f1_max(y, s), abs=1e-6)
    assert result.n_pos == y.sum() and result.n_neg == (~y).sum()


def test_accumulator_is_independent_of_chunking_and_order():
    maps, masks = _tied_data(7, shape=(6, 9, 11))
    acc_a, acc_b = PixelAccumulator(), PixelAccumulator()
    for m, k in zip(maps, masks, strict=True):
        acc_a.update(m, k)
    for m, k in zip(maps[::-1], masks[::-1], strict=True):
        acc_b.update(m, k)
    a, _ = acc_a.compute()
    b, _ = acc_b.compute()
    assert (a.auroc, a.ap, a.f1_max) == pytest.approx((b.auroc, b.ap, b.f1_max), abs=1e-12)
    assert a.aupro == pytest.approx(b.aupro, abs=1e-12)


def test_maps_of_different_sizes_and_torch_inputs():
    rng = np.random.default_rng(3)
    maps = [rng.random((8, 10)).astype(np.float32), rng.random((5, 7)).astype(np.float32)]
    masks = [rng.random((8, 10)) < 0.3, rng.random((5, 7)) < 0.3]
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([m.ravel() for m in maps])
    assert pixel_value(maps, masks, "auroc") == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    tmaps = torch.from_numpy(np.stack([maps[0]] * 2))[:, None]
    tmasks = torch.from_numpy(np.stack([masks[0]] * 2))[:, None]
    expected = roc_auc_score(np.tile(masks[0].ravel(), 2), np.tile(maps[0].ravel(), 2))
    assert pixel_value(tmaps, tmasks, "auroc") == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_image_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, 6, 40) / 3).astype(np.float32)
    labels = rng.random(40) < 0.4
    labels[:2] = [True, False]
    result, reason = metrics.image_metrics(scores, labels)
    assert reason is None
    assert result.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert result.ap == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
    assert result.f1_max == pytest.approx(_sk_f1_max(labels, scores), abs=1e-6)


def test_perfect_ranking_gives_one():
    masks = np.zeros((3, 10, 10), np.uint8)
    masks[0, 2:5, 2:5] = 1
    masks[2, 6:9, 1:3] = 1
    masks[2, 0:2, 7:9] = 1
    maps = masks * 2.0 + 0.1
    result, _ = metrics.pixel_metrics(maps, masks)
    assert (result.auroc, result.ap, result.f1_max, result.aupro) == (1.0, 1.0, 1.0, 1.0)
    assert result.n_regions == 3
    assert image_value([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1], "auroc") == 1.0
    assert image_value([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1], "ap") == 1.0


def test_single_label_image_metrics_are_undefined_not_zero():
    result, reason = metrics.image_metrics([0.3, 0.9, 0.5], [1, 1, 1])
    assert result is None and "single label" in reason
    assert image_value([0.3, 0.9], [0, 0], "auroc") is None
    assert image_value([0.3, 0.9], [1, 1], "ap") is None
    assert image_value([0.3, 0.9], [1, 1], "f1_max") is None


def test_pixel_metrics_undefined_without_anomalous_pixels():
    result, reason = metrics.pixel_metrics(np.ones((2, 4, 4)), np.zeros((2, 4, 4)))
    assert result is None and "anomalous" in reason


def test_validation_helper():
    maps, masks = _tied_data(2, shape=(4, 8, 8))
    out = metrics.pixel_and_image_auroc(maps, masks, [0.1, 0.5, 0.7, 0.2], [0, 1, 1, 0])
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel() != 0, maps.ravel()), abs=1e-6)
    assert out["image_auroc"] == 1.0
    out = metrics.pixel_and_image_auroc(maps, masks, [0.1, 0.5, 0.7, 0.2], [1, 1, 1, 1])
    assert out["image_auroc"] is None and "image_auroc_reason" in out


def test_bad_inputs_raise_with_names():
    with pytest.raises(ValueError, match="map 0.*NaN"):
        metrics.pixel_metrics(np.full((1, 3, 3), np.nan), np.ones((1, 3, 3)))
    with pytest.raises(ValueError, match="map 0.*shape"):
        metrics.pixel_metrics(np.ones((1, 3, 3)), np.ones((1, 3, 4)))
    with pytest.raises(ValueError, match="fpr_limit"):
        PixelAccumulator(fpr_limit=0.0)
