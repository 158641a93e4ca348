"""The paper's training numbers (spec sections 6-8), pinned against literals written in this test.

They are written once in the code (aaclip_med/training/config.py); the CLI and the bundle take them
from there. Each place a user meets them is checked here against the spec's values.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path

import torch
from ignite.engine import Events
from monai.bundle import ConfigParser

from aaclip_med.commands import train as train_command
from aaclip_med.distributed import DistContext
from aaclip_med.training import TrainConfig, build_stage_trainer, default_stage_config, run_stage_engine
from aaclip_med.training.batches import EpochBatches, SeededSamples
from tests.conftest import make_tiny_model
from tests.training._synthetic import DESCRIPTIONS, make_samples

BUNDLE_TRAIN = Path(__file__).resolve().parents[2] / "bundles" / "aaclip_zero_shot" / "configs" / "train.json"

# spec 7 (Stage 1) and 8 (Stage 2); spec 6: disentangle weight gamma
SPEC = {
    1: {"lr": 1e-5, "betas": (0.5, 0.999), "batch_size": 16, "epochs": 5, "milestones": ()},
    2: {"lr": 5e-4, "betas": (0.5, 0.999), "batch_size": 2, "epochs": 20, "milestones": (16000, 32000),
        "lr_factor": 0.5},
}
DISENTANGLE_WEIGHT = 0.1


def _assert_spec(config: TrainConfig) -> None:
    for stage, numbers in SPEC.items():
        got = dataclasses.asdict(config.stage_config(stage))
        for key, value in numbers.items():
            assert tuple(got[key]) == value if isinstance(value, tuple) else got[key] == value, (stage, key, got[key])
    assert config.disentangle_weight == DISENTANGLE_WEIGHT
    assert config.stage1_levels == "all"  # spec 7: the loss sums every level (the public code's bug is an option)


def test_default_stage_configs_and_train_config_hold_the_papers_numbers():
    _assert_spec(TrainConfig(out_dir="x"))
    assert default_stage_config(1, epochs=1).lr == SPEC[1]["lr"]  # an override changes only its field


def test_cli_defaults_are_the_papers():
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    args = parser.parse_args(["--manifest", "m.jsonl", "--dataset-root", ".", "--out", "o"])
    config = train_command.config_from_args(args)
    _assert_spec(config)
    assert config.stages == (1, 2) and config.precision == "auto" and config.resume is True


def test_bundle_defaults_are_the_papers_and_not_repeated_in_its_json():
    parser = ConfigParser()
    parser.read_config(str(BUNDLE_TRAIN))
    parser["output_dir"] = "unused"
    _assert_spec(parser.get_parsed_content("train_config"))
    text = BUNDLE_TRAIN.read_text()
    for literal in ("1e-05", "0.0005", "16000", "32000", "0.999"):
        assert literal not in text, f"train.json repeats the spec number {literal}; take it from TrainConfig"
    parser["stage2#epochs"] = 3  # the documented override still works
    assert parser.get_parsed_content("stage2").epochs == 3


def test_each_stage_builds_adam_with_the_spec_rates_and_stage2_halves_at_the_milestones():
    model = make_tiny_model(0)
    config = TrainConfig(out_dir="unused")
    batches = EpochBatches(SeededSamples(make_samples(2), None, 0), 2, 0)
    for stage in (1, 2):
        _, parts = build_stage_trainer(model, stage, config, batches, DESCRIPTIONS, DistContext(), "fp32")
        assert isinstance(parts.optimizer, torch.optim.Adam)
        group = parts.optimizer.param_groups[0]
        assert group["lr"] == SPEC[stage]["lr"] and tuple(group["betas"]) == SPEC[stage]["betas"]
    assert build_stage_trainer(model, 1, config, batches, DESCRIPTIONS, DistContext(), "fp32")[1].scheduler is None
    scheduler = parts.scheduler
    lrs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping the schedule without optimizer steps
        for step in range(1, 32001):
            scheduler.step()
            if step in (15999, 16000, 31999, 32000):
                lrs[step] = parts.optimizer.param_groups[0]["lr"]
    assert lrs[15999] == 5e-4 and lrs[16000] == 2.5e-4 and lrs[31999] == 2.5e-4 and lrs[32000] == 1.25e-4


def test_the_schedule_counts_iterations_not_epochs():
    """Milestone 2 halves the rate from the third iteration of the first epoch on."""
    config = TrainConfig(out_dir="unused", precision="fp32",
                         stage2=default_stage_config(2, lr=1e-3, milestones=(2,)))
    batches = EpochBatches(SeededSamples(make_samples(6), None, 0), 2, 0)  # 3 iterations in one epoch
    engine, parts = build_stage_trainer(make_tiny_model(0), 2, config, batches, DESCRIPTIONS, DistContext())
    used = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: used.append(e.state.output["lr"]))
    assert run_stage_engine(engine, parts, epochs=1)
    assert used == [1e-3, 1e-3, 5e-4]
