"""int8 calibration records ranges slice by slice (bounded memory) and gets ONNX Runtime's one-pass ranges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("quantize")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "tests.export._quantize_run", str(work)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return json.loads((work / "result.json").read_text())


def test_ranges_cover_every_slice(calibration):
    assert calibration["ranges"] == pytest.approx(calibration["true_range"], rel=1e-6)


def test_slice_by_slice_gives_the_one_pass_graph(calibration):
    assert calibration["parameters"] >= 8  # scales and zero points of both matmuls' inputs and weights
    assert calibration["differs_without_first"]  # the comparison sees a lost slice
    assert calibration["same_as_one_pass"]
    assert calibration["default_same"]


def test_default_is_slice_by_slice_on_a_recent_onnxruntime(calibration):
    if not calibration["takes_ranges_file"]:
        pytest.skip(f"onnxruntime {version('onnxruntime')} takes no ranges file: one pass is the default")
    assert any("slice by slice (3 slice(s)" in line for line in calibration["default_messages"])


def test_calibration_files_are_removed(calibration):
    assert calibration["leftovers"] == []


def test_seven_bit_weights_where_the_cpu_has_no_int8_dot_products(calibration):
    from aaclip_med.precision import cpu_has_int8_dot

    assert calibration["weight_levels"] == {"7": 64, "8": 127}  # 7 bits cannot saturate vpmaddubsw's int16 sums
    assert calibration["default_reduced"] is (not cpu_has_int8_dot())
    assert any(f"({8 - calibration['default_reduced']}-bit weights)" in line for line in calibration["default_messages"])
