"""Losses of spec section 6 against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from aaclip_med.losses import classification_loss, dice_loss, disentangle_loss, focal_loss, segmentation_loss


def _hand_focal(p_anomalous: list[float], labels: list[int]) -> float:
    total = 0.0
    for p_a, y in zip(p_anomalous, labels):
        onehot = [min(max(1.0 - y, 1e-5), 1 - 1e-5), min(max(float(y), 1e-5), 1 - 1e-5)]
        pt = onehot[0] * (1 - p_a) + onehot[1] * p_a + 1e-5
        total += -((1 - pt) ** 2) * math.log(pt)
    return total / len(labels)


def test_focal_matches_hand_computation():
    p_a = [0.9, 0.2, 0.5, 0.01]
    labels = [1, 0, 1, 0]
    probs = torch.stack([1 - torch.tensor(p_a), torch.tensor(p_a)]).reshape(1, 2, 2, 2)
    mask = torch.tensor(labels, dtype=torch.float32).reshape(1, 1, 2, 2)
    assert focal_loss(probs, mask).item() == pytest.approx(_hand_focal(p_a, labels), rel=1e-6)


def test_focal_perfect_prediction_is_tiny_but_positive():
    probs = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)], dim=1)
    loss = focal_loss(probs, torch.ones(1, 1, 4, 4)).item()
    # p_t = (1 - 1e-5) * 1 + 1e-5 = 1 exactly, but the clamp keeps it from being a free zero elsewhere
    assert 0.0 <= loss < 1e-9


def test_dice_matches_hand_computation():
    p = torch.tensor([[0.5, 0.5, 0.0, 1.0], [0.2, 0.0, 0.0, 0.0]])
    y = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    first = (2 * 1.5 + 1) / (2.0 + 2.0 + 1)  # 4 / 5
    second = (0 + 1) / (0.2 + 0 + 1)  # 1 / 1.2
    expected = 1 - (first + second) / 2
    assert dice_loss(p, y).item() == pytest.approx(expected, rel=1e-6)


def test_segmentation_loss_is_focal_plus_two_dice_on_upsampled_softmax():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 3, 3)
    mask = (torch.rand(2, 1, 6, 6) > 0.6).float()
    up = torch.nn.functional.interpolate(logits, size=(6, 6), mode="bilinear", align_corners=True)
    probs = up.softmax(dim=1)
    expected = focal_loss(probs, mask) + dice_loss(probs[:, 0], 1 - mask[:, 0]) + dice_loss(probs[:, 1], mask[:, 0])
    assert segmentation_loss(logits, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    # confident correct logits give a much lower loss than confident wrong ones (same grid size)
    grid = mask[:, :, ::2, ::2]
    good = torch.cat([-20 * grid + 10, 20 * grid - 10], dim=1)
    assert segmentation_loss(good, grid).item() < 0.1
    assert segmentation_loss(-good, grid).item() > 1.5


def test_disentangle_is_squared_batch_mean_of_dot_products():
    t_n = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    t_a = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    anchors = torch.stack([t_n, t_a], dim=2)  # (B=2, D=2, 2)
    expected = ((0.6 + 0.8) / 2) ** 2
    assert disentangle_loss(anchors).item() == pytest.approx(expected, rel=1e-6)
    assert disentangle_loss(anchors[0]).item() == pytest.approx(0.36, rel=1e-6)


def test_classification_loss_is_cross_entropy_without_temperature():
    logits = torch.tensor([[0.2, 0.5], [0.3, -0.1]])
    labels = torch.tensor([1.0, 0.0])
    first = -math.log(math.exp(0.5) / (math.exp(0.2) + math.exp(0.5)))
    second = -math.log(math.exp(0.3) / (math.exp(0.3) + math.exp(-0.1)))
    assert classification_loss(logits, labels).item() == pytest.approx((first + second) / 2, rel=1e-6)
