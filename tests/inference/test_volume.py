"""Slicing options and per-source presets: which slices are predicted and which decide the case score."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
from PIL import Image

from aaclip_med.inference import InferenceOptions, SliceOptions, run_inference
from tests._synthetic import write_nifti
from tests.inference.conftest import IntensityModel


def _ct_with_a_speck(path):
    """(20, 18, 5) CT in HU: air everywhere; slice 0 holds 4 voxels of bright bone (1 % of the
    slice), slice 3 a large soft-tissue region (60 %)."""
    volume = np.full((20, 18, 5), -1000.0, np.float32)
    volume[:2, :2, 0] = 1500.0
    volume[:12, :, 3] = 100.0
    return write_nifti(path, volume)


def _rows(out):
    scores = json.loads((out / "scores.json").read_text())
    return scores["cases"], scores["slices"]


def test_case_score_ignores_near_empty_slices(tmp_path):
    _ct_with_a_speck(tmp_path / "in" / "vol.nii.gz")
    run_inference([tmp_path / "in"], tmp_path / "out", IntensityModel(), modality="ct", device="cpu")
    (case,), slices = _rows(tmp_path / "out")
    by_index = {s["slice_index"]: s for s in slices}
    assert by_index[0]["image_score"] > by_index[3]["image_score"]  # the speck is the brightest slice...
    assert by_index[0]["foreground"] == round(4 / 360, 4) and not by_index[0]["scored"]
    assert by_index[3]["foreground"] == round(216 / 360, 4) and by_index[3]["scored"]
    assert case["max_slice"] == 3 and case["case_score"] == by_index[3]["image_score"]  # ...but does not decide


def test_min_foreground_zero_counts_every_slice(tmp_path):
    _ct_with_a_speck(tmp_path / "in" / "vol.nii.gz")
    options = InferenceOptions(modality="ct", device="cpu", slices=SliceOptions(min_foreground=0.0))
    run_inference([tmp_path / "in"], tmp_path / "out", IntensityModel(), options)
    (case,), _ = _rows(tmp_path / "out")
    assert case["max_slice"] == 0


def test_skip_empty_and_slice_range_predict_fewer_slices(tmp_path):
    _ct_with_a_speck(tmp_path / "in" / "vol.nii.gz")
    model = IntensityModel()
    run_inference([tmp_path / "in"], tmp_path / "skip", model, modality="ct", device="cpu",
                  slices=SliceOptions(skip_empty=True))
    assert model.images_seen == 1  # only slice 3 has >= 5 % foreground
    (case,), slices = _rows(tmp_path / "skip")
    assert [s["slice_index"] for s in slices] == [3] and case["n_slices"] == 1
    model = IntensityModel()
    run_inference([tmp_path / "in"], tmp_path / "range", model, modality="ct", device="cpu",
                  slices=SliceOptions(start=1, stop=3))
    assert model.images_seen == 2 and [s["slice_index"] for s in _rows(tmp_path / "range")[1]] == [1, 2]


def test_slice_axis(tmp_path):
    _ct_with_a_speck(tmp_path / "in" / "vol.nii.gz")
    model = IntensityModel()
    run_inference([tmp_path / "in"], tmp_path / "out", model, modality="ct", device="cpu",
                  slices=SliceOptions(axis=0, min_foreground=0.0))
    assert model.images_seen == 20 and len(_rows(tmp_path / "out")[1]) == 20


def test_auto_picks_and_records_a_preset_per_case(tmp_path, caplog):
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    ct = np.full((12, 10, 3), -1000.0, np.float32)
    ct[2:10, 2:8] = 40.0
    write_nifti(folder / "abdomen.nii.gz", ct)
    write_nifti(folder / "brain.nii.gz", (rng.random((12, 10, 3)) * 900).astype(np.float32))
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / "part.png")
    with caplog.at_level(logging.INFO, logger="aaclip_med"):
        run_inference([folder], tmp_path / "out", IntensityModel(), device="cpu")
    with open(tmp_path / "out" / "scores_cases.csv") as handle:
        rows = {r["case_id"]: r for r in csv.DictReader(handle)}
    assert {k: (r["modality"], r["domain"]) for k, r in rows.items()} == {
        "abdomen": ("ct", "medical"), "brain": ("mri", "medical"), "part": ("photo", "industrial")}
    assert "Hounsfield" in rows["abdomen"]["modality_reason"] and "8-bit" in rows["part"]["modality_reason"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "auto chose" in r.getMessage()]
    assert len(warnings) == 3 and any("case brain: --modality auto chose mri" in w for w in warnings)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["modality"] == "auto"
