"""Each bundle command of the README, run as a user runs it (a subprocess in the bundle folder).

A tiny CLIP with random weights stands in for ViT-L-14-336 (same code path); the data are a few
generated PNG images (training, evaluation) and a cases folder with an oblique NIfTI volume, an
oblique DICOM series and a PNG (inference).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from safetensors.numpy import load_file
from sklearn.metrics import roc_auc_score

from .commands import run_command


def test_verify_metadata_offline(bundle, folders):
    """The schema is already at --filepath (a local copy), so MONAI validates without downloading."""
    proc = run_command("verify_metadata", bundle, folders)
    assert "metadata is verified with no error" in proc.stdout + proc.stderr


def test_verify_net_in_out(bundle, folders):
    """At the metadata's 518 x 518: the tiny backbone takes any size, so only the weights change."""
    proc = run_command("verify_net_in_out", bundle, folders, ["--backbone", "aaclip-tiny", "--backbone_weights", "random"])
    assert "data shape of network is verified with no error" in proc.stdout + proc.stderr


def test_verify_net_in_out_at_another_size(bundle, folders):
    """The README's override of the metadata's spatial shape, for a model at another image size."""
    extra = ["--backbone", "aaclip-tiny", "--backbone_weights", "random"]
    proc = run_command("verify_net_in_out_other_size", bundle, folders, extra)
    assert "data shape of network is verified with no error" in proc.stdout + proc.stderr


def _split(path: Path) -> tuple[dict, dict]:
    state = load_file(str(path))
    text = {k: v for k, v in state.items() if k.startswith(("text_adapters.", "text_proj."))}
    image = {k: v for k, v in state.items() if k not in text}
    return text, image


def test_training_writes_both_stages(trained: Path, bundle: Path):
    for name in ("adapters.safetensors", "adapters.json", "train_state.pt", "train_config.json", "log.jsonl",
                 "stage1/last.safetensors", "stage2/last.safetensors"):
        assert (trained / name).is_file(), name
    config = json.loads((trained / "adapters.json").read_text())["config"]
    assert (config["backbone"], config["image_size"]) == ("aaclip-tiny", 112)
    text1, image1 = _split(bundle.parent / "after_stage1" / "last.safetensors")
    text2, image2 = _split(trained / "adapters.safetensors")
    assert all(np.array_equal(text1[k], text2[k]) for k in text1), "Stage 2 changed the text side"
    assert any(not np.array_equal(image1[k], image2[k]) for k in image1), "Stage 2 trained nothing"


def _ras_of_dicom_voxel(image: sitk.Image, row: int, col: int, slc: int) -> np.ndarray:
    lps = np.array(image.TransformIndexToPhysicalPoint((col, row, slc)))
    return lps * np.array([-1.0, -1.0, 1.0])


def test_inference_overlays_sit_on_the_source_grid(inferred: Path, cases: Path):
    summary = json.loads((inferred / "summary.json").read_text())
    assert (summary["done"], summary["failed"]) == (3, [])

    source = nib.load(cases / "brain.nii.gz")
    overlay = nib.load(inferred / "brain_anomaly.nii.gz")
    assert overlay.shape == source.shape and overlay.get_data_dtype() == np.float32
    np.testing.assert_allclose(overlay.affine, source.affine, atol=1e-4)
    assert np.isfinite(overlay.get_fdata()).all()

    # DICOM: the same voxel of the overlay (nibabel, RAS) and of the series (SimpleITK, LPS)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(cases / "ct_series")))
    series = reader.Execute()
    dicom_overlay = nib.load(inferred / "ct_series_anomaly.nii.gz")
    rows, cols, slices = dicom_overlay.shape
    assert (cols, rows, slices) == series.GetSize()
    for voxel in [(0, 0, 0), (rows - 1, 0, 0), (0, cols - 1, slices - 1), (rows - 1, cols - 1, slices - 1)]:
        ras = dicom_overlay.affine @ np.array([*voxel, 1.0])
        np.testing.assert_allclose(ras[:3], _ras_of_dicom_voxel(series, *voxel), atol=1e-3)

    with Image.open(inferred / "photo_heatmap.png") as heatmap:
        assert heatmap.size == (40, 40)


def test_inference_writes_scores_and_run_record(inferred: Path, trained: Path):
    with open(inferred / "scores_cases.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["case_id"] for r in rows) == ["brain", "ct_series", "photo"]
    assert all(np.isfinite(float(r["case_score"])) for r in rows)
    assert len(json.loads((inferred / "brain_scores.json").read_text())["slices"]) == 3
    run = json.loads((inferred / "run.json").read_text())
    assert run["random_weights"] is False and run["backbone"] == "aaclip-tiny" and run["pretrained_sha256"]
    assert Path(run["weights"]).name == "adapters.safetensors" and run["weights_sha256"]


def test_evaluation_writes_the_reports(bundle, folders, trained, tiny):
    run_command("evaluate", bundle, folders, tiny + ["--output_dir", str(bundle.parent / "evaluation")])
    out = bundle.parent / "evaluation"
    assert len((out / "predictions" / "predictions.jsonl").read_text().splitlines()) == 4
    for name in ("report.json", "metrics.csv", "report.md", "report.html"):
        assert (out / "report" / name).is_file(), name
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["protocol"] == "deployment"
    lines = [json.loads(x) for x in (out / "predictions" / "predictions.jsonl").read_text().splitlines()]
    per_class = [roc_auc_score([x["label"] for x in lines if x["class_name"] == name],
                               [x["image_score"] for x in lines if x["class_name"] == name])
                 for name in sorted({x["class_name"] for x in lines})]
    assert report["mean"]["image_auroc"] == pytest.approx(float(np.mean(per_class)), abs=1e-6)  # the written scores


@pytest.mark.slow
def test_multi_gpu_training_two_processes_on_cpu(bundle, folders, tiny):
    """torchrun, 2 processes, gloo: both stages run and rank 0 writes the adapters once."""
    out = bundle.parent / "multi_gpu_models"
    run_command("multi_gpu_train", bundle, folders,
                tiny + ["--stage1#epochs", "1", "--stage2#epochs", "1", "--stage1#batch_size", "1",
                              "--stage2#batch_size", "1", "--output_dir", str(out)])
    log_lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log_lines, "no training log"
    assert (out / "adapters.safetensors").is_file() and (out / "stage2" / "last.safetensors").is_file()


@pytest.mark.slow
def test_multi_gpu_inference_equals_one_process(bundle, folders, inferred, tiny):
    """torchrun, 2 processes: the cases are split between ranks, the files equal the 1-process run."""
    out = bundle.parent / "multi_gpu_eval"
    run_command("multi_gpu_inference", bundle, folders, tiny + ["--output_dir", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["failed"]) == (3, [])
    for name in ("brain_anomaly.nii.gz", "ct_series_anomaly.nii.gz"):
        np.testing.assert_allclose(nib.load(out / name).get_fdata(), nib.load(inferred / name).get_fdata(), atol=1e-5)
