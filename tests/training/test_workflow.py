"""Both stages end to end on the tiny model: losses fall, only adapters change, CLIP untouched."""

from __future__ import annotations

import json

import torch

from aaclip_med.model import load_adapters
from aaclip_med.training import run_training
from aaclip_med.training.freeze import STAGE_MODULES
from tests.conftest import make_tiny_model
from tests.training._runs import tiny_config
from tests.training._synthetic import make_samples


def _losses(log_path, stage):
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    return [r for r in records if r.get("stage") == stage and "loss" in r]


def test_two_stages_train_adapters_only(tmp_path):
    model = make_tiny_model(0)
    clip_before = {k: v.clone() for k, v in model.clip.state_dict().items()}
    adapters_before = {k: v.clone() for k, v in model.adapter_state_dict().items()}
    config = tiny_config(tmp_path / "run", epochs=3)
    result = run_training(model, config, make_samples(8), val_data=make_samples(4, seed=1))

    assert result.completed and result.adapters.is_file()
    for key, value in model.clip.state_dict().items():
        assert torch.equal(value, clip_before[key]), f"frozen CLIP weight {key} changed"
    after = model.adapter_state_dict()
    trained = {name for stage in (1, 2) for name in STAGE_MODULES[stage]}
    for key, value in after.items():
        assert key.split(".")[0] in trained
        assert not torch.equal(value, adapters_before[key]), f"{key} did not train"
    for stage in (1, 2):
        steps = _losses(tmp_path / "run" / "log.jsonl", stage)
        assert steps[-1]["loss"] < steps[0]["loss"], f"stage {stage} loss did not decrease"
        assert result.best[stage]["epoch"] in (1, 2, 3)
        assert (tmp_path / "run" / f"stage{stage}" / "best.safetensors").is_file()
    reloaded = load_adapters(result.adapters, pretrained="random")
    for key, value in after.items():
        assert torch.equal(reloaded.adapter_state_dict()[key], value.float())
    assert reloaded.config.descriptions["widget"] == "textured widget surface"


def test_stage_one_alone_leaves_image_side_untouched(tmp_path):
    model = make_tiny_model(1)
    image_before = {k: v.clone() for k, v in model.adapter_state_dict().items() if not k.startswith("text")}
    result = run_training(model, tiny_config(tmp_path, epochs=1, stages=(1,)), make_samples(4))
    assert result.completed
    for key, value in image_before.items():
        assert torch.equal(model.adapter_state_dict()[key], value)
    assert not (tmp_path / "stage2").exists()


def test_progress_bar_only_on_a_terminal(tmp_path, monkeypatch):
    """Inference's rule: a log file (not a terminal) gets no carriage-return bar lines."""
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    outputs = {}
    for name, stream in (("log", io.StringIO()), ("tty", Terminal())):
        monkeypatch.setattr(sys, "stderr", stream)
        run_training(make_tiny_model(), tiny_config(tmp_path / name, epochs=1, stages=(1,), progress=True), make_samples(4))
        monkeypatch.undo()
        outputs[name] = stream.getvalue()
    assert "\r" not in outputs["log"] and "stage 1" not in outputs["log"]
    assert "stage 1" in outputs["tty"]
