"""The exported-graph runs, made once per session in a child process (see _engine_run.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests._synthetic import write_dicom_series

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def engine_runs(tmp_path_factory) -> Path:
    """WORK folder of ``python -m tests.export._engine_run`` on a 3-slice CT series, 4 normal slices and
    a series of one normal slice."""
    work = tmp_path_factory.mktemp("engines")
    rng = np.random.default_rng(1)
    series = write_dicom_series(work / "cases" / "ct", rng.integers(-200, 200, (3, 32, 30)).astype(np.int16))
    assert series
    write_dicom_series(work / "normals" / "ct", rng.integers(-200, 200, (4, 32, 30)).astype(np.int16))
    write_dicom_series(work / "one_normal" / "ct", rng.integers(-200, 200, (1, 32, 30)).astype(np.int16))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "tests.export._engine_run", str(work), str(work / "cases"),
                           str(work / "normals"), str(work / "one_normal")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"engine run failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-6000:]}")
    log = json.loads((work / "cli.json").read_text())
    failed = {command: entry for command, entry in log.items() if entry["code"] != 0}
    assert not failed, json.dumps(failed, indent=1)
    return work
