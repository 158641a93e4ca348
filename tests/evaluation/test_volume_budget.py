"""The evaluation's one volume cache: its budget changes memory use and decodes, never a result; --no-viewer."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from aaclip_med.cli import main
from aaclip_med.data.loading import load_image
from aaclip_med.evaluation import cases
from aaclip_med.evaluation.evaluate import evaluate_predictions
from aaclip_med.evaluation.predictions import read_jsonl


def _cases_js(report_dir) -> dict:
    text = (report_dir / "viewer" / "cases.js").read_text()
    return json.loads(text[text.index("=") + 1 :].strip().rstrip(";"))


@pytest.fixture(scope="module")
def budgets(sample_report, tmp_path_factory):
    """The sample evaluated with the cache off and with room for every volume: {budget: report dir}."""
    _, manifest, pred = sample_report
    root = tmp_path_factory.mktemp("budgets")
    decoded: list[str] = []
    with pytest.MonkeyPatch.context() as patch:  # count the sources the report pass decodes
        def counted(path, *args, **kwargs):
            decoded.append(Path(path).relative_to(manifest.parent).as_posix())
            return load_image(path, *args, **kwargs)

        patch.setattr(cases, "load_image", counted)
        for budget in (0, 64):
            evaluate_predictions(manifest, manifest.parent, pred, root / str(budget), examples_per_group=2, cache_mb=budget)
    return {budget: root / str(budget) for budget in (0, 64)}, manifest, decoded


def test_each_source_is_decoded_once_per_run(budgets):
    """Tiles come case by case, not in score order: a series with several example slices is read once."""
    reports, manifest, decoded = budgets
    entries = read_jsonl(manifest)
    volumes = {e["image_path"] for e in entries if "slice_index" in e}
    runs = [decoded[: len(decoded) // 2], decoded[len(decoded) // 2 :]]
    for run in runs:
        assert sorted(run) == sorted(set(run))  # no source twice
        assert volumes <= set(run)  # every volume case is in the viewer
    shown = {c["image_path"] for c in _cases_js(reports[64])["cases"]}
    assert set(runs[1]) == shown  # and nothing is read that is not shown

def test_a_small_budget_changes_memory_use_not_results(budgets):
    reports, manifest, _ = budgets
    off, room = (json.loads((reports[b] / "report.json").read_text()) for b in (0, 64))
    assert off["classes"] == room["classes"] and off["mean"] == room["mean"]
    assert _cases_js(reports[0]) == _cases_js(reports[64])  # the same viewer: ranges, thresholds, peaks
    for case in _cases_js(reports[0])["cases"]:
        for name in case["files"].values():
            assert (reports[0] / name).read_bytes() == (reports[64] / name).read_bytes(), name
    # memory: nothing kept without a budget; with room, each mask volume is decoded once for the run
    # (kept as uint8 from the metric pass for the tiles and the viewer) and every other slice hits
    masks = {e["mask_path"]: e for e in read_jsonl(manifest) if "slice_index" in e}
    slices = sum(1 for e in read_jsonl(manifest) if "slice_index" in e)
    assert off["volume_cache"]["peak_bytes"] == 0 and off["volume_cache"]["misses"] == 0
    assert room["volume_cache"]["misses"] == len(masks) == 2  # the CT's mask and the MR's mask
    assert room["volume_cache"]["hits"] >= 2 * slices - len(masks)  # metric pass and viewer, every slice
    held = sum(np.prod(nib.load(str(manifest.parent / path)).shape) for path in masks)
    assert room["volume_cache"]["peak_bytes"] == held  # one byte per voxel


def test_no_viewer_writes_the_report_alone(sample_report, tmp_path, capsys):
    _, manifest, pred = sample_report
    code = main(["evaluate", "--manifest", str(manifest), "--predictions", str(pred), "--out", str(tmp_path / "r"),
                 "--no-viewer", "--cache-mb", "16"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["metrics.csv", "report.html", "report.json", "report.md"]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["volume_cache"]["budget_mb"] == 16
    page = (tmp_path / "r" / "report.html").read_text()
    assert "viewer.html" not in page and "class ct" in page.lower()


def test_a_negative_budget_is_refused(sample_report, tmp_path, capsys):
    _, manifest, pred = sample_report
    code = main(["evaluate", "--manifest", str(manifest), "--predictions", str(pred), "--out", str(tmp_path / "r"),
                 "--cache-mb", "-1"])
    assert code == 1 and "--cache-mb must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="cache_mb must be >= 0"):
        evaluate_predictions(manifest, manifest.parent, pred, tmp_path / "r", cache_mb=-1)
