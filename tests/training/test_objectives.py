"""Stage losses: Stage 1 gradients reach only the text side; 'last' uses the last level only."""

from __future__ import annotations

import pytest
import torch

from aaclip_med.losses import disentangle_loss, segmentation_loss
from aaclip_med.training import freeze_for_stage, stage1_losses, stage2_losses
from aaclip_med.training.objectives import fixed_anchor_table, stack_anchors
from tests.conftest import make_tiny_model
from tests.training._synthetic import make_samples


@pytest.fixture(scope="module")
def setup():
    from aaclip_med.training import collate_samples

    model = make_tiny_model(0)
    return model, collate_samples(make_samples(2))


def test_stage1_levels_all_sums_every_level_and_last_uses_one(setup):
    model, batch = setup
    descs = ["ceramic tile"] * 2
    with torch.no_grad():
        everything = stage1_losses(model, batch, descs, disentangle_weight=0.1, levels="all")
        last = stage1_losses(model, batch, descs, disentangle_weight=0.1, levels="last")
        feats = model.surgery_features(batch["image"])
        anchors = stack_anchors({descs[0]: model.compute_text_anchors(descs[0])}, descs)
        per_level = [segmentation_loss(lg, batch["mask"]) for lg in model.patch_logits(feats, anchors)]
    dis = disentangle_loss(anchors)
    assert everything["loss"].item() == pytest.approx((sum(per_level) + 0.1 * dis).item(), rel=1e-5)
    assert last["loss"].item() == pytest.approx((per_level[-1] + 0.1 * dis).item(), rel=1e-5)


def test_stage1_gradients_reach_text_side_only(setup):
    model, batch = setup
    freeze_for_stage(model, 1)
    model.zero_grad(set_to_none=True)
    stage1_losses(model, batch, ["ceramic tile"] * 2, 0.1)["loss"].backward()
    assert all(p.grad is not None for p in model.text_adapters.parameters())
    assert all(p.grad is None for p in model.image_adapters.parameters())


def test_stage2_loss_is_ce_plus_seg_and_trains_image_side(setup):
    model, batch = setup
    freeze_for_stage(model, 2)
    model.zero_grad(set_to_none=True)
    anchors = stack_anchors(fixed_anchor_table(model, ["ceramic tile"]), ["ceramic tile"] * 2)
    out = stage2_losses(model, batch, anchors)
    assert out["loss"].item() == pytest.approx((out["seg"] + out["ce"]).item(), rel=1e-6)
    out["loss"].backward()
    assert all(p.grad is not None for p in model.det_head.parameters())
    assert all(p.grad is None for p in model.text_proj.parameters())


def test_recomputed_level_loss_matches_stored_one():
    from aaclip_med.losses import segmentation_loss
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
