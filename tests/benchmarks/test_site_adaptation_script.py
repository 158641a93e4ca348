"""benchmarks/site_adaptation.py, without the training variants: the memory separates the sample's lesions."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import site_adaptation as bench  # noqa: E402


def test_memory_variants_detect_lesions_the_zero_shot_map_misses(capsys):
    bench.main(["--variants", "zero-shot", "references", "memory"])
    out = capsys.readouterr().out
    records = {r["variant"]: r for r in map(json.loads, (line for line in out.splitlines() if line.startswith('{"variant"')))}
    assert set(records) == {"zero-shot", "references", "memory"}
    assert records["memory"]["reference_weight"] == 1.0 and records["references"]["reference_weight"] == 0.5
    assert records["zero-shot"]["train_normals"] == 14 and records["zero-shot"]["test_anomalous"] == 11
    metric = {name: r["metrics"]["all"] for name, r in records.items()}
    # random weights: the zero-shot map is near chance, nearest-neighbour distances to normal patches are not
    assert metric["zero-shot"]["pixel_auroc"] < 0.6
    assert metric["memory"]["pixel_auroc"] > 0.75 and metric["memory"]["image_auroc"] > 0.9
    assert metric["references"]["pixel_auroc"] > metric["zero-shot"]["pixel_auroc"] + 0.2
    assert "references  all" in out  # the printed table
