"""Runs killed at a random point (SIGKILL / SIGTERM to a CLI subprocess) resume to the same
results as an uninterrupted run, and no partial file survives under its final name."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from safetensors.torch import load_file

from tests._tools import stop_when

from ._files import nifti, write_png

pytestmark = pytest.mark.slow
TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--seed", "0"]


def _cli(*args):
    return [sys.executable, "-m", "aaclip_med.cli", *map(str, args)]


def _kill_when(command, ready, sig):
    """Start `command`, stop it at a random point once `ready()` holds (tests._tools.stop_when), then send `sig`."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert stop_when(process.pid, ready), "the run ended (or timed out) before it was ready to be killed"
    process.send_signal(sig)
    process.send_signal(signal.SIGCONT)  # a stopped process acts on SIGTERM once continued
    return process.wait(timeout=60)


def test_killed_cohort_inference_resumes_to_the_same_outputs(tmp_path):
    rng = np.random.default_rng(0)
    cases = 8
    # the run is stopped while it checks, so the kill lands after 2 cases and before the last whatever the speed
    for k in range(cases):
        nifti(tmp_path / "in" / f"case{k}.nii.gz", rng.random((10, 8, 40)).astype(np.float32))
    args = ["infer", tmp_path / "in", "--modality", "mri", "--threshold", "3", "--batch-size", "4", *TINY]
    killed = tmp_path / "killed"
    _kill_when(_cli(*args, "--out", killed), lambda: len(list((killed / ".done").glob("*.json"))) >= 2,
               signal.SIGKILL)
    done_before = len(list((killed / ".done").glob("*.json")))
    assert 2 <= done_before < cases, "the kill should land mid-run"
    for path in killed.glob("*.nii.gz"):  # whatever has a final name is complete
        nib.load(path).get_fdata()
    assert subprocess.run(_cli(*args, "--out", killed), capture_output=True).returncode == 0
    assert subprocess.run(_cli(*args, "--out", tmp_path / "clean"), capture_output=True).returncode == 0
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["skipped"] == done_before and summary["done"] == cases - done_before
    assert not list(killed.rglob(".tmp-*"))
    for k in range(cases):
        a = nib.load(killed / f"case{k}_anomaly.nii.gz").get_fdata()
        b = nib.load(tmp_path / "clean" / f"case{k}_anomaly.nii.gz").get_fdata()
        np.testing.assert_array_equal(a, b)
    assert (killed / "scores_cases.csv").read_text() == (tmp_path / "clean" / "scores_cases.csv").read_text()


def test_terminated_training_resumes_and_completes(tmp_path):
    """SIGTERM mid-run, then the same command: it resumes from train_state.pt and completes with
    the same adapters as an uninterrupted run of the same command."""
    from aaclip_med.training import load_train_state

    rng = np.random.default_rng(0)
    lines = []
    for k in range(4):
        write_png(tmp_path / f"img{k}.png", rng.integers(0, 255, (24, 24, 3)).astype(np.uint8))
        record = {"image_path": f"img{k}.png", "label": float(k % 2), "class_name": "widget"}
        if k % 2:  # training needs anomalous samples with masks
            mask = np.zeros((24, 24), np.uint8)
            mask[6:14, 8:18] = 255
            write_png(tmp_path / f"mask{k}.png", mask)
            record["mask_path"] = f"mask{k}.png"
        lines.append(json.dumps(record))
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "killed"
    args = ["train", "--manifest", tmp_path / "m.jsonl", "--dataset-root", tmp_path, "--out", out, *TINY,
            "--descriptions", '{"widget": "plastic widget"}', "--epochs-stage1", "1", "--epochs-stage2", "4",
            "--batch-size-stage1", "2", "--batch-size-stage2", "1", "--save-every", "1",
            "--no-progress", "--no-tensorboard"]
    _kill_when(_cli(*args), lambda: (out / "train_state.pt").is_file(), signal.SIGTERM)
    assert not (out / "adapters.safetensors").exists(), "the kill should land mid-run"
    interrupted = load_train_state(out / "train_state.pt")  # complete under its final name
    assert interrupted.get("completed") is not True
    assert subprocess.run(_cli(*args), capture_output=True).returncode == 0
    assert load_train_state(out / "train_state.pt")["completed"] is True
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    clean = tmp_path / "clean"
    clean_args = [clean if a == out else a for a in args]
    assert subprocess.run(_cli(*clean_args), capture_output=True).returncode == 0
    resumed, uninterrupted = load_file(out / "adapters.safetensors"), load_file(clean / "adapters.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        np.testing.assert_allclose(resumed[key].numpy(), uninterrupted[key].numpy(), rtol=0, atol=1e-6, err_msg=key)
