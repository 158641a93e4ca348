"""benchmarks/int8_calibration.py at toy size: both paths give the same int8 graph (no timing asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_paths_give_the_same_graph_per_slice_count():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")  # ONNX Runtime stays out of pytest's process
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "int8_calibration.py"), "--backbone", "aaclip-tiny",
                           "--image-size", "112", "--slices", "1", "2", "--paths", "sliced", "one-pass"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    runs = {(r["path"], r["slices"]): r for r in records if r["kind"] == "calibration"}
    assert set(runs) == {(path, n) for path in ("sliced", "one-pass") for n in (1, 2)}
    for n in (1, 2):
        assert runs["sliced", n]["parameters_sha"] == runs["one-pass", n]["parameters_sha"]
        assert runs["sliced", n]["peak_rss_mb"] > 0 and runs["sliced", n]["image_size"] == 112
    assert runs["sliced", 1]["parameters_sha"] != runs["sliced", 2]["parameters_sha"]  # the second slice counts
