"""Manifest runs write the predictions directory that ``evaluate_predictions`` reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from aaclip_med.data.manifest import write_manifest
from aaclip_med.evaluation.evaluate import evaluate_predictions
from aaclip_med.inference import run_inference
from tests._synthetic import write_nifti
from tests.inference.conftest import IntensityModel, blob_volume


def _dataset(root):
    records = []
    for n in range(4):
        image = np.full((24, 30), 40, np.uint8)
        mask = np.zeros((24, 30), np.uint8)
        if n % 2:
            image[5:10, 8:14], mask[5:10, 8:14] = 250, 255
        Image.fromarray(image).save(root / f"img{n}.png")
        Image.fromarray(mask).save(root / f"mask{n}.png")
        records.append({"image_path": f"img{n}.png", "label": float(n % 2), "class_name": "scan",
                        "mask_path": f"mask{n}.png" if n % 2 else ""})
    write_nifti(root / "vol.nii.gz", blob_volume(center=(12, 7, 3)))
    for k in (1, 3):
        records.append({"image_path": "vol.nii.gz", "label": float(k == 3), "class_name": "scan", "slice_index": k})
    return write_manifest(records, root / "manifest.jsonl"), records


def test_predictions_dir_is_read_by_evaluation(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    manifest, records = _dataset(root)
    pred = tmp_path / "pred"
    model = IntensityModel()
    summary = run_inference([], pred, model, modality="photo", domain="medical", manifest=manifest, dataset_root=root, device="cpu")
    assert summary["total"] == 5 and not summary["failed"]
    assert model.images_seen == len(records)
    lines = [json.loads(line) for line in (pred / "predictions.jsonl").read_text().splitlines()]
    assert [line["image_path"] for line in lines] == [r["image_path"] for r in records]
    assert [line["index"] for line in lines] == list(range(len(records)))
    for line in lines[:4]:
        score_map = np.load(pred / line["map_path"])
        assert score_map.dtype == np.float32 and score_map.shape == (24, 30)
    assert np.load(pred / lines[4]["map_path"]).shape == (20, 18)  # a volume slice at its native size
    assert lines[1]["image_score"] > lines[0]["image_score"]  # the bright defect scores higher
    run = json.loads((pred / "run.json").read_text())
    assert run["random_weights"] is True and run["image_size"] == 28 and run["domain"] == "medical"
    report = evaluate_predictions(manifest, root, pred, tmp_path / "report", protocol="deployment")
    expected = roc_auc_score([line["label"] for line in lines], [line["image_score"] for line in lines])
    assert report["classes"][0]["image_auroc"] == pytest.approx(expected, abs=1e-6)  # the written scores, read back
    # the paper protocol scores the S x S maps the model produced, written beside the native ones
    for line in lines:
        model_map = np.load(pred / line["model_map_path"])
        assert model_map.shape == (28, 28) and model_map.dtype == np.float32
        assert float(model_map.max()) == line["map_max"]  # map_max is the max of the S x S map
    paper = evaluate_predictions(manifest, root, pred, tmp_path / "paper", protocol="paper")
    assert paper["protocol"] == "paper" and paper["classes"][0]["pixel_auroc"] > 0.9  # the bright defects are found

    again = IntensityModel()  # resume: everything is done, nothing is recomputed
    summary = run_inference([], pred, again, modality="photo", domain="medical", manifest=manifest, dataset_root=root,
                            device="cpu")
    assert summary["skipped"] == 5 and again.images_seen == 0
    assert [json.loads(line)["modality"] for line in (pred / "predictions.jsonl").read_text().splitlines()] == ["photo"] * 6
