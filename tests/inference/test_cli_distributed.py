"""``aaclip-med infer`` end to end with the tiny model, in one process and sharded over 2 (torchrun, gloo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from aaclip_med.cli import main
from tests._tools import skip_or_fail

_TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--seed", "0", "--threshold", "3"]


def test_cli_single_process(tmp_path, nifti_cases, caplog):
    code = main(["infer", str(nifti_cases), "--out", str(tmp_path / "out"), "--modality", "mr", *_TINY])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["done"] == 3
    assert "RANDOM weights" in caplog.text  # the loud warning
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["random_weights"] is True and run["domain"] == "medical" and run["modality"] == "mri"


def test_cli_missing_input_is_an_error(tmp_path, capsys):
    assert main(["infer", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), *_TINY]) == 1
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
def test_two_ranks_equal_one_process(tmp_path, nifti_cases):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))  # torch installs it beside python
    if torchrun is None:
        skip_or_fail(f"no torchrun beside {sys.executable}; it comes with torch")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["infer", str(nifti_cases), "--out", str(one), *_TINY]) == 0
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "aaclip_med.cli", "infer",
           str(nifti_cases), "--out", str(two), *_TINY]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((two / "summary.json").read_text())["done"] == 3
    assert json.loads((two / "run.json").read_text())["world_size"] == 2
    for name in ("scores_cases.csv", "scores_slices.csv", "scores.json"):
        assert (two / name).read_text() == (one / name).read_text(), name
    for n in range(3):
        a = np.asarray(nib.load(str(one / f"case{n}_anomaly.nii.gz")).dataobj)
        b = np.asarray(nib.load(str(two / f"case{n}_anomaly.nii.gz")).dataobj)
        np.testing.assert_array_equal(a, b)
