"""Training state files: atomic, weights-only, RNG round trip, scheduler milestones."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from aaclip_med.training.state import (
    capture_rng,
    load_scheduler_state,
    load_train_state,
    restore_rng,
    save_train_state,
    scheduler_state,
)


def test_rng_and_scheduler_round_trip_through_a_weights_only_file(tmp_path):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [2, 4], gamma=0.5)
    for _ in range(3):
        opt.step()
        sched.step()
    state = {"stage": 1, "iteration": 3, "rng": capture_rng(), "scheduler": scheduler_state(sched)}
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    path = save_train_state(state, tmp_path / "train_state.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["train_state.pt"]  # no temporary left over

    loaded = load_train_state(path)
    restore_rng(loaded["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
    fresh = torch.optim.lr_scheduler.MultiStepLR(opt, [9], gamma=0.1)
    load_scheduler_state(fresh, loaded["scheduler"])
    assert fresh.last_epoch == 3 and dict(fresh.milestones) == {2: 1, 4: 1}


def test_foreign_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="other.pt"):
        load_train_state(path)
