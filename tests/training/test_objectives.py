"""Stage losses against values derived in the test from the model's features (spec 6-8).

The expected values are built here by hand: logits ``100 * f @ T`` reshaped to the patch grid,
the segmentation loss of each level (itself checked against hand computations in
tests/test_losses.py), the cross-entropy and the disentangle term written out with torch
primitives. Nothing is read back from the dictionary the code under test returns.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aaclip_med.losses import segmentation_loss
from aaclip_med.training import collate_samples, freeze_for_stage, stage1_losses, stage2_losses
from aaclip_med.training.objectives import fixed_anchor_table, stack_anchors
from tests.conftest import make_tiny_model
from tests.training._synthetic import make_samples

DESC = "ceramic tile"


@pytest.fixture(scope="module")
def setup():
    model = make_tiny_model(0)
    return model, collate_samples(make_samples(2))


def _grid_logits(features: torch.Tensor, anchors: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, L, D) features, (B, D, 2) anchors -> (B, 2, g, g) logits, ``100 * f @ T`` per image."""
    scores = 100.0 * torch.einsum("bld,bdk->blk", features, anchors)
    return scores.permute(0, 2, 1).reshape(features.shape[0], 2, *grid)


def _hand_disentangle(anchors: torch.Tensor) -> torch.Tensor:
    dots = [float(anchors[b, :, 0] @ anchors[b, :, 1]) for b in range(anchors.shape[0])]
    return torch.tensor((sum(dots) / len(dots)) ** 2)


@torch.no_grad()
def _stage1_parts(model, batch):
    anchors = model.compute_text_anchors(DESC).unsqueeze(0).expand(2, -1, -1)  # (B, D, 2)
    levels = model.surgery_features(batch["image"])
    per_level = [segmentation_loss(_grid_logits(f, anchors, model.grid_size), batch["mask"]) for f in levels]
    return per_level, _hand_disentangle(anchors)


def test_stage1_loss_sums_every_level_plus_weighted_disentangle(setup):
    model, batch = setup
    per_level, dis = _stage1_parts(model, batch)
    assert len(per_level) == 4  # the 4 tapped levels (6/12/18/24 on ViT-L; all 4 blocks of the tiny model)
    assert min(float(v) for v in per_level) > 0.05  # each level weighs: leaving one out would show
    with torch.no_grad():
        got = stage1_losses(model, batch, [DESC] * 2, disentangle_weight=0.1, levels="all")["loss"]
    assert float(got) == pytest.approx(float(sum(per_level) + 0.1 * dis), rel=1e-5)


def test_stage1_last_level_option_uses_the_last_level_only(setup):
    model, batch = setup
    per_level, dis = _stage1_parts(model, batch)
    with torch.no_grad():
        got = stage1_losses(model, batch, [DESC] * 2, disentangle_weight=0.1, levels="last")["loss"]
    assert float(got) == pytest.approx(float(per_level[3] + 0.1 * dis), rel=1e-5)


def test_disentangle_weight_scales_the_disentangle_term_only(setup):
    model, batch = setup
    _, dis = _stage1_parts(model, batch)
    assert float(dis) > 1e-4  # the random text side is far from orthogonal anchors: the term is visible
    with torch.no_grad():
        base, tenth, one = (float(stage1_losses(model, batch, [DESC] * 2, disentangle_weight=w)["loss"])
                            for w in (0.0, 0.1, 1.0))
    assert tenth - base == pytest.approx(0.1 * float(dis), rel=1e-3)
    assert one - base == pytest.approx(float(dis), rel=1e-3)


def test_stage2_loss_is_cross_entropy_plus_the_sum_of_four_level_losses(setup):
    model, batch = setup
    anchors = stack_anchors(fixed_anchor_table(model, [DESC]), [DESC] * 2)
    with torch.no_grad():
        feats = model.encode_image(batch["image"])
        per_level = [segmentation_loss(_grid_logits(f, anchors, model.grid_size), batch["mask"]) for f in feats.levels]
        global_logits = torch.einsum("bd,bdk->bk", feats.global_feature, anchors)  # det @ T, no temperature
        labels = batch["label"].long()
        ce = -torch.log_softmax(global_logits, dim=1)[torch.arange(2), labels].mean()
        got = stage2_losses(model, batch, anchors)["loss"]
    assert len(per_level) == 4 and min(float(v) for v in per_level) > 0.05
    assert float(ce) > 0.05
    assert float(got) == pytest.approx(float(sum(per_level) + ce), rel=1e-5)


def test_stage1_gradients_reach_text_side_only(setup):
    model, batch = setup
    freeze_for_stage(model, 1)
    model.zero_grad(set_to_none=True)
    stage1_losses(model, batch, [DESC] * 2, 0.1)["loss"].backward()
    assert all(p.grad is not None and bool(p.grad.any()) for p in model.text_adapters.parameters())
    assert all(p.grad is None for p in model.image_adapters.parameters())


def test_stage2_gradients_reach_image_side_only(setup):
    model, batch = setup
    freeze_for_stage(model, 2)
    model.zero_grad(set_to_none=True)
    anchors = stack_anchors(fixed_anchor_table(model, [DESC]), [DESC] * 2)
    stage2_losses(model, batch, anchors)["loss"].backward()
    assert all(p.grad is not None and bool(p.grad.any()) for p in model.det_head.parameters())
    assert all(p.grad is not None and bool(p.grad.any()) for p in model.seg_heads.parameters())
    assert all(p.grad is None for p in model.text_proj.parameters())


def test_recomputed_level_loss_matches_stored_one():
    from aaclip_med.training.objectives import level_seg_loss

    torch.manual_seed(0)
    base = torch.randn(2, 2, 8, 8)
    masks = (torch.rand(2, 1, 32, 32) > 0.7).float()
    stored = base.clone().requires_grad_(True)
    recomputed = base.clone().requires_grad_(True)
    a = segmentation_loss(stored, masks)
    b = level_seg_loss(recomputed, masks)
    a.backward()
    b.backward()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(stored.grad, recomputed.grad, rtol=0, atol=0)
    assert F.mse_loss(stored.grad, torch.zeros_like(stored.grad)) > 0
