"""What training refuses: data without masks, Stage 2 without a trained Stage 1, and a resume whose
settings differ from the work already in the folder (the run record is never rewritten for it)."""

from __future__ import annotations

import json

import pytest

from aaclip_med.model import load_adapters
from aaclip_med.training import run_training
from aaclip_med.training.record import carried_stages
from tests.conftest import make_tiny_model
from tests.training._runs import tiny_config
from tests.training._synthetic import make_samples


def _config(out, **overrides):
    return tiny_config(out, **{"batch1": 2, "batch2": 2, "epochs": 1, **overrides})


def test_data_without_any_anomaly_mask_is_refused(tmp_path):
    normal = [s for s in make_samples(4) if s["label"] == 0.0]
    with pytest.raises(ValueError, match="none has an anomaly mask") as err:
        run_training(make_tiny_model(0), _config(tmp_path / "out"), normal)
    assert "mask_path" in str(err.value)  # says what is needed
    assert not (tmp_path / "out").exists()


def test_stage2_alone_needs_a_trained_stage1(tmp_path):
    data = make_samples(2)
    with pytest.raises(ValueError, match="Stage 2 alone needs trained Stage-1 text adapters") as err:
        run_training(make_tiny_model(0), _config(tmp_path / "fresh", stages=(2,)), data)
    assert "--weights" in str(err.value) and "--stage 1" in str(err.value)
    assert not (tmp_path / "fresh").exists()

    # a finished Stage 1 in the folder is enough ...
    assert run_training(make_tiny_model(0), _config(tmp_path / "run", stages=(1,)), data).completed
    assert run_training(make_tiny_model(0), _config(tmp_path / "run", stages=(2,)), data).completed
    record = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert record["config"]["stages"] == [1, 2]
    final = json.loads((tmp_path / "run" / "adapters.json").read_text())["extra"]
    assert final["trained_stages"] == [1, 2]

    # ... and so are adapters that carry one, in a fresh folder
    stage1 = tmp_path / "run" / "stage1" / "last.safetensors"
    model = load_adapters(stage1, pretrained="random", model=make_tiny_model(0))
    assert run_training(model, _config(tmp_path / "from_weights", stages=(2,)), data).completed


def test_carried_stages_read_from_adapter_metadata():
    assert carried_stages(None) == set()
    assert carried_stages({"trained_stages": [1]}) == {1}
    assert carried_stages({"imported_from": ["text_adapter.pth", "image_adapter.pth"]}) == {1, 2}
    assert carried_stages({"stages": [1, 2], "seed": 0}) == {1, 2}
    assert carried_stages({"stage": 1, "epoch": 3}) == {1}
    assert carried_stages({"calibration": {}}) == set()


def test_resume_refuses_changed_settings_of_the_work_done(tmp_path):
    data, out = make_samples(4), tmp_path / "out"
    first = run_training(make_tiny_model(0), _config(out, stages=(1,), stop_after_iterations=1), data)
    assert not first.completed
    record = (out / "train_config.json").read_bytes()
    stage1 = dict(_config(out).stage1.__dict__, lr=5e-3)
    from aaclip_med.training import StageConfig

    changed = _config(out, stages=(1,), seed=3, stage1=StageConfig(**stage1))
    with pytest.raises(ValueError) as err:
        run_training(make_tiny_model(0), changed, data)
    message = str(err.value)
    assert "stage1.lr: 0.001 there, 0.005 now" in message and "seed: 0 there, 3 now" in message
    assert "--force" in message
    assert (out / "train_config.json").read_bytes() == record  # the record of the work done is kept

    with pytest.raises(ValueError, match=r"data\.train\.sha256"):
        run_training(make_tiny_model(0), _config(out, stages=(1,)), make_samples(4, seed=5))

    forced = run_training(make_tiny_model(0), _config(out, stages=(1,), seed=3, resume=False), data)
    assert forced.completed
    assert json.loads((out / "train_config.json").read_text())["config"]["seed"] == 3


def test_settings_of_a_stage_not_started_may_change(tmp_path):
    from aaclip_med.training import StageConfig

    data, out = make_samples(2), tmp_path / "out"
    run_training(make_tiny_model(0), _config(out, stop_after_iterations=1, epochs=2), data)  # stage 1 mid-way
    faster = StageConfig(epochs=1, lr=7e-3, batch_size=2, milestones=(5,))
    result = run_training(make_tiny_model(0), _config(out, epochs=2, stage2=faster), data)
    assert result.completed
    config = json.loads((out / "train_config.json").read_text())["config"]
    assert config["stage2"]["lr"] == 7e-3 and config["stage1"]["epochs"] == 2


def test_a_finished_run_is_not_rewritten(tmp_path):
    data, out = make_samples(2), tmp_path / "out"
    assert run_training(make_tiny_model(0), _config(out, stages=(1,)), data).completed
    before = {name: (out / name).read_bytes() for name in ("train_config.json", "adapters.safetensors", "adapters.json")}
    again = run_training(make_tiny_model(0), _config(out, stages=(1,)), data)
    assert again.completed and again.adapters == out / "adapters.safetensors"
    assert {name: (out / name).read_bytes() for name in before} == before
    with pytest.raises(ValueError, match="disentangle_weight: 0.1 there, 0.5 now"):
        run_training(make_tiny_model(0), _config(out, stages=(1,), disentangle_weight=0.5), data)
