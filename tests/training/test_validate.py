"""Each stage is validated on what it trains: Stage 1 on the text side only (issue: untrained heads)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aaclip_med.training.objectives import stack_anchors
from aaclip_med.training.validate import validate
from tests.conftest import make_tiny_model
from tests.training._synthetic import make_samples

DESC = {"widget": "textured widget surface"}


def _redraw(modules: list[nn.Module], seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for param in module.parameters():
                nn.init.xavier_uniform_(param) if param.dim() > 1 else param.normal_()


def _metrics(model, data, stage: int) -> dict:
    def anchors_for(names):
        return stack_anchors({d: model.text_anchors(d) for d in DESC.values()}, [DESC[n] for n in names])

    return validate(model, data, anchors_for, "industrial", torch.device("cpu"), stage, batch_size=4)


def test_stage1_metric_ignores_the_untrained_image_side_and_follows_the_text_side():
    model = make_tiny_model(0)
    data = make_samples(6, seed=3)
    stage1, stage2 = _metrics(model, data, 1), _metrics(model, data, 2)
    assert isinstance(stage1["pixel_auroc"], float) and isinstance(stage1["image_auroc"], float)

    _redraw([model.image_adapters, model.seg_heads, model.det_head], seed=7)  # what Stage 1 never trains
    assert _metrics(model, data, 1) == stage1
    assert _metrics(model, data, 2)["pixel_auroc"] != stage2["pixel_auroc"]  # Stage 2 does depend on them

    _redraw([model.text_adapters, model.text_proj], seed=8)  # what Stage 1 trains
    assert _metrics(model, data, 1)["pixel_auroc"] != stage1["pixel_auroc"]


def test_stage1_maps_are_the_loss_logits_turned_into_the_inference_map():
    """Stage-1 maps: 100 * surgery features @ anchors, then the spec-5 map rule (checked by hand)."""
    from aaclip_med.model.smoothing import gaussian_blur
    from aaclip_med.training.validate import stage_predictions

    model = make_tiny_model(0).eval()
    images = torch.stack([s["image"] for s in make_samples(2, seed=1)])
    anchors = model.text_anchors(DESC["widget"]).unsqueeze(0).expand(2, -1, -1)
    with torch.no_grad():
        maps, scores = stage_predictions(model, images, anchors, "industrial", stage=1)
        expected = torch.zeros(2, 112, 112)
        for feats in model.surgery_features(images):
            logits = 100.0 * torch.einsum("bld,bdk->bkl", feats, anchors).reshape(2, 2, 8, 8)
            level = (logits[:, 1:2] + 1.0 - logits[:, 0:1]) / 2.0
            level = gaussian_blur(level, 7, 1.0)  # industrial: kernel 7, sigma 1
            expected += torch.nn.functional.interpolate(level, size=(112, 112), mode="bilinear", align_corners=True)[:, 0]
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(scores, expected.flatten(1).amax(dim=1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("stage", [1, 2])
def test_stage_predictions_run_in_the_given_precision_and_return_float32(stage):
    from aaclip_med.training.validate import stage_predictions

    model = make_tiny_model(0).eval()
    images = torch.stack([s["image"] for s in make_samples(3, seed=2)])
    anchors = model.text_anchors(DESC["widget"]).unsqueeze(0).expand(3, -1, -1)
    with torch.no_grad():
        ref_maps, ref_scores = stage_predictions(model, images, anchors, "industrial", stage)
        maps, scores = stage_predictions(model, images, anchors, "industrial", stage, precision="bf16")
    assert maps.dtype == scores.dtype == torch.float32 and maps.shape == ref_maps.shape == (3, 112, 112)
    assert not torch.equal(maps, ref_maps)  # it did run in bf16
    corr = torch.corrcoef(torch.stack([maps.flatten(), ref_maps.flatten()]))[0, 1]
    assert corr > 0.99


def test_training_validates_under_its_own_precision(tmp_path, monkeypatch):
    import importlib

    from aaclip_med.training import run_training
    from tests.training._runs import tiny_config

    validate_module = importlib.import_module("aaclip_med.training.validate")  # the module, not the function

    seen = []
    original = validate_module._stage_outputs

    def spy(*args, **kwargs):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return original(*args, **kwargs)

    monkeypatch.setattr(validate_module, "_stage_outputs", spy)
    data = make_samples(4, seed=5)
    config = tiny_config(tmp_path / "out", epochs=1, stages=(1,), precision="bf16")
    run_training(make_tiny_model(0), config, data, val_data=make_samples(4, seed=6))
    assert seen and set(seen) == {torch.bfloat16}
