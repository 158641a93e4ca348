"""bf16 autocast training (forced: this CPU may not run bf16 natively, where ``auto`` means fp32).

Tolerance. bf16 keeps 8 significant bits: one rounding changes a value by up to 2^-8 = 0.4 %.
The tiny model's random weights make the logits ``100 * f @ T`` large (tens to about a hundred),
so the losses (focal and dice of a nearly saturated softmax) read logit differences in which a
0.4 % error of ``f @ T`` is about half a logit. Measured on seeds 0-2, batch 4: loss within 3.9 %,
gradient within 4.7 % relative L2 norm, cosine >= 0.9989 between the gradients. We allow 8 % and a
cosine of 0.995, about twice the measured spread. A dropped loss term, a gradient through the wrong
branch or a master weight stored in bf16 would be far outside (or fail the dtype checks).
"""

from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Events

from aaclip_med.distributed import DistContext
from aaclip_med.precision import resolve_precision
from aaclip_med.training import (
    build_stage_trainer,
    collate_samples,
    freeze_for_stage,
    run_stage_engine,
    run_training,
    stage1_losses,
    stage2_losses,
)
from aaclip_med.training.batches import EpochBatches, SeededSamples
from aaclip_med.training.objectives import fixed_anchor_table, stack_anchors
from tests.conftest import make_tiny_model
from tests.training._runs import tiny_config
from tests.training._synthetic import DESCRIPTIONS, make_samples

REL_TOL = 0.08
MIN_COSINE = 0.995
DESC = "ceramic tile"


def _loss_and_grad(model, batch, stage: int, bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    params = freeze_for_stage(model, stage)
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if stage == 1:
            loss = stage1_losses(model, batch, [DESC] * 4, 0.1)["loss"]
        else:
            loss = stage2_losses(model, batch, stack_anchors(fixed_anchor_table(model, [DESC]), [DESC] * 4))["loss"]
    loss.backward()
    assert loss.dtype == torch.float32  # the losses are computed in fp32 under autocast too
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in params)  # fp32 master weights
    return loss.detach(), torch.cat([p.grad.reshape(-1) for p in params])


@pytest.mark.parametrize("stage", [1, 2])
def test_bf16_loss_and_gradients_agree_with_fp32(stage):
    model = make_tiny_model(0)
    batch = collate_samples(make_samples(4))
    loss32, grad32 = _loss_and_grad(model, batch, stage, bf16=False)
    loss16, grad16 = _loss_and_grad(model, batch, stage, bf16=True)
    assert not torch.equal(grad16, grad32), "bf16 autocast did not run"
    assert float((loss16 - loss32).abs() / loss32.abs()) < REL_TOL
    assert float((grad16 - grad32).norm() / grad32.norm()) < REL_TOL
    assert float(torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)) > MIN_COSINE


def _first_step(stage: int, precision: str) -> tuple[float, dict]:
    model = make_tiny_model(0)
    config = tiny_config("unused", precision=precision)
    batches = EpochBatches(SeededSamples(make_samples(2), None, 0), 2, 0)
    engine, parts = build_stage_trainer(model, stage, config, batches, DESCRIPTIONS, DistContext(), precision)
    losses = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"]))
    run_stage_engine(engine, parts, epochs=1)
    return losses[0], {k: v.clone() for k, v in model.adapter_state_dict().items()}


@pytest.mark.parametrize("stage", [1, 2])
def test_engine_step_runs_bf16_and_keeps_fp32_weights(stage):
    loss32, weights32 = _first_step(stage, "fp32")
    loss16, weights16 = _first_step(stage, "bf16")
    assert loss16 != loss32 and abs(loss16 - loss32) / abs(loss32) < REL_TOL
    assert all(v.dtype == torch.float32 for v in weights16.values())
    assert any(not torch.equal(weights16[k], weights32[k]) for k in weights32)


def test_resolved_precision_is_recorded(tmp_path):
    data = make_samples(4)
    run_training(make_tiny_model(0), tiny_config(tmp_path / "auto", epochs=1, stages=(1,), precision="auto"), data)
    recorded = json.loads((tmp_path / "auto" / "train_config.json").read_text())["config"]["precision"]
    assert recorded == resolve_precision("auto", "cpu") and recorded in ("fp32", "bf16")
    run_training(make_tiny_model(0), tiny_config(tmp_path / "bf16", epochs=1, stages=(1,), precision="bf16"), data)
    assert json.loads((tmp_path / "bf16" / "train_config.json").read_text())["config"]["precision"] == "bf16"


def test_fp16_on_a_cpu_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="fp16 autocast is for GPUs"):
        run_training(make_tiny_model(0), tiny_config(tmp_path / "out", precision="fp16"), make_samples(4))
    assert not (tmp_path / "out").exists()
