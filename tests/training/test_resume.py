"""An interrupted run resumes where it stopped and ends with the weights of an uninterrupted run."""

from __future__ import annotations

import torch

from aaclip_med.training import load_train_state, run_training
from tests.conftest import make_tiny_model
from tests.training._runs import tiny_config
from tests.training._synthetic import make_samples


def test_resume_mid_epoch_in_both_stages_matches_uninterrupted(tmp_path):
    data = make_samples(6)  # stage 1: 2 batches of 4 (last one of 2); stage 2: 3 batches of 2
    reference = make_tiny_model(0)
    run_training(reference, tiny_config(tmp_path / "straight"), data)

    out = tmp_path / "interrupted"
    first = run_training(make_tiny_model(0), tiny_config(out, stop_after_iterations=3), data)
    assert not first.completed
    state = load_train_state(out / "train_state.pt")
    assert (state["stage"], state["iteration"], state["completed"]) == (1, 3, False)

    second = run_training(make_tiny_model(0), tiny_config(out, stop_after_iterations=4), data)
    assert not second.completed  # stage 1 finished (4 iterations), stage 2 stopped mid epoch 2
    state = load_train_state(out / "train_state.pt")
    assert (state["stage"], state["iteration"]) == (2, 4)

    resumed = make_tiny_model(0)
    final = run_training(resumed, tiny_config(out), data)
    assert final.completed
    expected = reference.adapter_state_dict()
    for key, value in resumed.adapter_state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=1e-6)


def test_no_resume_starts_afresh(tmp_path):
    data = make_samples(4)
    run_training(make_tiny_model(0), tiny_config(tmp_path, stages=(1,), stop_after_iterations=1), data)
    fresh = run_training(make_tiny_model(0), tiny_config(tmp_path, stages=(1,), resume=False, epochs=1), data)
    assert fresh.completed
    assert load_train_state(tmp_path / "train_state.pt")["iteration"] == 1  # a fresh 1-epoch run of 1 batch
