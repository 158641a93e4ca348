"""evaluate_predictions end to end on a tiny predictions directory."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

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


def _published_metrics(lines, preds, data, size):
    """The public evaluation (test.py + metrics_eval), written out: S x S model maps, masks
    resized with PIL NEAREST then != 0, float32 min-max of maps and global scores per class, then
    0.5 max(map) + 0.5 s_g (industrial) or max(map) (medical), sklearn metrics."""
    maps = np.stack([np.load(preds / x["model_map_path"]) for x in lines]).astype(np.float32)
    masks = np.stack([
        np.asarray(Image.open(data / x["mask_path"]).convert("L").resize((size, size), Image.NEAREST)) != 0
        if x["label"] else np.zeros((size, size), bool)
        for x in lines
    ])
    image = np.array([x["global_score"] for x in lines], dtype=np.float32)
    maps = (maps - maps.min()) / (maps.max() - maps.min())
    image = (image - image.min()) / (image.max() - image.min())
    peaks = maps.max(axis=(1, 2))
    image = peaks * 0.5 + image * 0.5 if lines[0]["domain"] == "industrial" else peaks
    labels = [x["label"] for x in lines]
    return {
        "pixel_auroc": roc_auc_score(masks.ravel(), maps.ravel()),
        "pixel_ap": average_precision_score(masks.ravel(), maps.ravel()),
        "image_auroc": roc_auc_score(labels, image) if len(set(labels)) > 1 else None,
        "image_ap": average_precision_score(labels, image) if len(set(labels)) > 1 else None,
    }


@pytest.mark.parametrize("domain", ["industrial", "medical"])
def test_paper_protocol_computes_what_the_published_runs_computed(predictions_factory, tmp_path, domain):
    manifest, data, preds = predictions_factory({"bottle": (5, 6, domain)}, seed=3, size=(45, 61), model_size=28)
    lines = [json.loads(x) for x in (preds / "predictions.jsonl").read_text().splitlines()]
    expected = _published_metrics(lines, preds, data, 28)
    report = evaluate_predictions(manifest, data, preds, tmp_path / "out", protocol="paper")
    row = report["classes"][0]
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, abs=1e-6), name
    maps = [np.load(preds / x["model_map_path"]) for x in lines]
    assert row["normalisation"]["map"]["max"] == max(float(m.max()) for m in maps)
    # scoring the native-size maps instead (what `paper` did before) gives another number
    native = evaluate_predictions(manifest, data, preds, tmp_path / "native", protocol="deployment")
    assert abs(native["classes"][0]["pixel_auroc"] - expected["pixel_auroc"]) > 1e-4


def test_paper_protocol_needs_the_model_size_maps(predictions_factory, tmp_path):
    manifest, data, preds = predictions_factory({"bottle": (2, 2, "industrial")})
    lines = [json.loads(x) for x in (preds / "predictions.jsonl").read_text().splitlines()]
    for line in lines:
        del line["model_map_path"]
    (preds / "predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ValueError, match="no 'model_map_path': the paper protocol scores the S x S maps"):
        evaluate_predictions(manifest, data, preds, tmp_path / "out", protocol="paper")
    report = evaluate_predictions(manifest, data, preds, tmp_path / "out", protocol="deployment")
    maps = [np.load(preds / x["map_path"]) for x in lines]  # native-size maps against native-size masks
    masks = [np.asarray(Image.open(data / x["mask_path"]).convert("L")) != 0 if x["label"] else np.zeros(m.shape, bool)
             for x, m in zip(lines, maps)]
    expected = roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps]))
    assert report["classes"][0]["pixel_auroc"] == pytest.approx(expected, abs=1e-6)


def test_inconsistent_inputs_name_the_file(predictions_factory, tmp_path):
    manifest, data, preds = predictions_factory({"bottle": (2, 2, "industrial")})
    with pytest.raises(ValueError, match="protocol"):
        evaluate_predictions(manifest, data, preds, tmp_path / "out", protocol="best")
    manifest.write_text(manifest.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="predictions.jsonl has 4 lines"):
        evaluate_predictions(manifest, data, preds, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unscored_prediction_is_left_out_with_a_named_warning(predictions_factory, tmp_path, caplog):
    manifest, data, preds = predictions_factory({"bottle": (4, 4, "industrial")})
    lines = [json.loads(x) for x in (preds / "predictions.jsonl").read_text().splitlines()]
    lines[0] |= {"image_score": None, "reason": "no slice reaches min_foreground 0.05"}
    (preds / "predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    report = evaluate_predictions(manifest, data, preds, tmp_path / "out", protocol="deployment")
    kept = lines[1:]
    expected = roc_auc_score([x["label"] for x in kept], [x["image_score"] for x in kept])
    assert report["classes"][0]["image_auroc"] == pytest.approx(expected, abs=1e-6)
    assert any("predictions.jsonl:1" in r.getMessage() and "unscored (no slice reaches min_foreground 0.05)" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")


def test_unknown_dataset_name_is_refused_listing_the_known_ones(predictions_factory, tmp_path):
    manifest, data, preds = predictions_factory({"bottle": (2, 2, "industrial")})
    with pytest.raises(ValueError, match=r"dataset 'mvtech' has no published numbers to compare with; known: .*mvtec"):
        evaluate_predictions(manifest, data, preds, tmp_path / "out", dataset="mvtech")
    assert not (tmp_path / "out").exists()
    assert evaluate_predictions(manifest, data, preds, tmp_path / "out", dataset="MVTec-AD")["published"]["key"] == "mvtec"
