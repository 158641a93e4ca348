"""evaluate_predictions end to end on a tiny predictions directory."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from aaclip_med.evaluation.evaluate import REPORT_FILES, evaluate_predictions

CLASSES = {"bottle": (3, 3, "industrial"), "polyp": (0, 3, "medical")}


def test_reports_written_and_self_contained(predictions_factory, tmp_path):
    manifest, data, preds = predictions_factory(CLASSES, random_weights=True)
    out = tmp_path / "out"
    report = evaluate_predictions(manifest, data, preds, out, protocol="paper", dataset="CVC-ClinicDB")
    # the reports, and the viewer of the example images; no temporary file left
    assert sorted(p.name for p in out.iterdir()) == sorted([*REPORT_FILES, "viewer.html", "viewer"])
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    page = (out / "report.html").read_text()
    for text in (page, (out / "viewer.html").read_text(), (out / "viewer" / "viewer.js").read_text()):
        assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text)
        assert "http://" not in text and "https://" not in text
    assert "WARNING" in page and "random" in page
    for name in CLASSES:
        assert f"Class {name}" in page
    saved = json.loads((out / "report.json").read_text())
    assert saved["protocol"] == "paper" and saved["random_weights"] is True
    assert saved["file_hashes"]["weights_sha256"] == "ab" * 32
    assert saved["published"]["pixel_auroc"] == 89.6
    assert saved["package_versions"]["numpy"] == np.__version__
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["class_name"] for r in rows] == ["bottle", "polyp", "mean"]
    polyp = report["classes"][1]
    assert polyp["image_auroc"] is None and "single label" in polyp["undefined"]["image"]
    assert rows[1]["image_auroc"] == ""
    assert report["mean"]["image_auroc"] == report["classes"][0]["image_auroc"]
    md = (out / "report.md").read_text()
    assert "Comparison with the paper" in md and "polyp" in md


def test_deployment_protocol_uses_written_scores(predictions_factory, tmp_path):
    manifest, data, preds = predictions_factory({"bottle": (4, 4, "industrial")})
    report = evaluate_predictions(manifest, data, preds, tmp_path / "out", protocol="deployment")
    lines = [json.loads(x) for x in (preds / "predictions.jsonl").read_text().splitlines()]
    expected = roc_auc_score([x["label"] for x in lines], [x["image_score"] for x in lines])
    assert report["classes"][0]["image_auroc"] == pytest.approx(expected, abs=1e-6)
    assert report["classes"][0]["normalisation"] is None
    assert report["random_weights"] is False and report["published"] is None


def test_paper_protocol_recombines_normalised_scores(predictions_factory, tmp_path):
    manifest, data, preds = predictions_factory({"bottle": (4, 4, "industrial")}, seed=3)
    lines = [json.loads(x) for x in (preds / "predictions.jsonl").read_text().splitlines()]
    maps = [np.load(preds / x["map_path"]) for x in lines]
    lo, hi = min(m.min() for m in maps), max(m.max() for m in maps)
    g = np.array([x["global_score"] for x in lines])
    scores = [
        0.5 * (m.max() - lo) / (hi - lo) + 0.5 * (s - g.min()) / (g.max() - g.min())
        for m, s in zip(maps, g, strict=True)
    ]
    report = evaluate_predictions(manifest, data, preds, tmp_path / "out", protocol="paper")
    expected = roc_auc_score([x["label"] for x in lines], scores)
    assert report["classes"][0]["image_auroc"] == pytest.approx(expected, abs=1e-6)
    assert report["classes"][0]["normalisation"]["map"]["max"] == pytest.approx(hi)


def test_inconsistent_inputs_name_the_file(predictions_factory, tmp_path):
    manifest, data, preds = predictions_factory({"bottle": (2, 2, "industrial")})
    with pytest.raises(ValueError, match="protocol"):
        evaluate_predictions(manifest, data, preds, tmp_path / "out", protocol="best")
    manifest.write_text(manifest.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="predictions.jsonl has 4 lines"):
        evaluate_predictions(manifest, data, preds, tmp_path / "out")
    assert not (tmp_path / "out").exists()
