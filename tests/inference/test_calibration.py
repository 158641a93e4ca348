"""Normal-reference calibration: the numbers, fitting on references, storage, use at inference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aaclip_med.inference import (
    Calibration,
    Predictor,
    calibration_from_model,
    fit_calibration,
    load_calibration,
    run_inference,
    save_calibration,
)
from aaclip_med.inference.calibration import ClassCalibration, PixelStats
from aaclip_med.model import load_adapters, save_adapters
from tests._synthetic import write_nifti
from tests.conftest import make_tiny_model
from tests.inference.conftest import IntensityModel, blob_volume


def test_z_and_percentile_values():
    pixels = PixelStats()
    pixels.add(np.arange(100.0), np.random.default_rng(0))
    cal = ClassCalibration.fit("scan", "scan", "medical", [4.0, 1.0, 3.0, 2.0], pixels)
    assert cal.image_scores == [1.0, 2.0, 3.0, 4.0]
    assert cal.z(2.5) == pytest.approx(0.0)
    assert cal.z(2.5 + np.std([1, 2, 3, 4], ddof=1)) == pytest.approx(1.0)
    assert cal.percentile(2.5) == pytest.approx(2.5 / 5)
    assert cal.percentile(100.0) == pytest.approx(4.5 / 5) and cal.percentile(-1.0) == pytest.approx(0.5 / 5)
    assert cal.pixel_mean == pytest.approx(49.5) and cal.pixel_quantiles["0.99"] == pytest.approx(98.01)
    with pytest.raises(ValueError, match="at least 2"):
        ClassCalibration.fit("scan", "scan", "medical", [1.0], pixels)
    with pytest.raises(ValueError, match=r"class 'scan': 2 of 4 normal image score\(s\) are not finite"):
        ClassCalibration.fit("scan", "scan", "medical", [1.0, float("nan"), 3.0, float("inf")], pixels)


def _normals(folder, count=3):
    rng = np.random.default_rng(0)
    for n in range(count):
        write_nifti(folder / f"normal{n}.nii.gz", (rng.random((20, 18, 3)) * 30).astype(np.float32))
    return folder


def test_fit_save_load_and_apply(tmp_path):
    normals = _normals(tmp_path / "normals")
    predictor = Predictor(IntensityModel(), modality="ct", device="cpu")
    fitted = fit_calibration(predictor, [normals], "scan", "scan")
    assert len(fitted.image_scores) == 9  # 3 volumes x 3 slices
    path = save_calibration(Calibration({"scan": fitted}), tmp_path / "cal.json")
    loaded = load_calibration(path)
    assert loaded.get("scan") == fitted

    write_nifti(tmp_path / "in" / "lesion.nii.gz", blob_volume(shape=(20, 18, 3), center=(10, 9, 1)))
    _normals(tmp_path / "in", count=1)
    run_inference([tmp_path / "in"], tmp_path / "out", IntensityModel(), modality="ct", calibration=loaded, device="cpu")
    cases = {c["case_id"]: c for c in json.loads((tmp_path / "out" / "scores.json").read_text())["cases"]}
    assert cases["lesion"]["normal_percentile"] == pytest.approx(9.5 / 10)  # above every normal slice
    assert cases["lesion"]["calibrated_z"] > cases["normal0"]["calibrated_z"]
    assert cases["normal0"]["normal_percentile"] < 1.0


def test_calibration_travels_with_the_checkpoint(tmp_path):
    cal = Calibration({"scan": ClassCalibration("scan", "scan", "medical", [1.0, 2.0], 1.5, 0.7, 0.0, 1.0, {"0.99": 2.0})})
    path = save_adapters(make_tiny_model(), tmp_path / "adapters", extra={"calibration": cal.to_dict()})
    model = load_adapters(path, pretrained="random")
    assert calibration_from_model(model).get("scan") == cal.get("scan")


def test_bad_calibration_file_names_the_fix(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(ValueError, match="--calibrate-normals"):
        load_calibration(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_calibration(tmp_path / "missing.json")


def _calibration(model_fields: dict, class_name="scan", modality="ct") -> Calibration:
    fitted = ClassCalibration(class_name, "scan", "medical", [1.0, 2.0, 3.0], 2.0, 1.0, 0.0, 1.0, {"0.99": 2.0}, modality)
    return Calibration({class_name: fitted}, model_fields)


def _identity(model, weights=None):
    from aaclip_med.identity import scoring_identity
    from aaclip_med.inference.run_info import run_record

    return scoring_identity(run_record(model, weights, {}))


def test_mismatched_calibration_is_refused_naming_each_difference(tmp_path, nifti_cases):
    model = IntensityModel()
    other = _identity(model) | {"backbone": "ViT-B-16", "image_size": 224}
    with pytest.raises(ValueError) as info:
        run_inference([nifti_cases], tmp_path / "out", model, modality="ct", calibration=_calibration(other), device="cpu")
    message = str(info.value)
    assert "backbone: calibration 'ViT-B-16', this run 'aaclip-tiny'" in message
    assert "image_size: calibration 224, this run 28" in message and "--allow-calibration-mismatch" in message
    assert not (tmp_path / "out").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="modality: calibration 'ct', this run 'mri'"):
        run_inference([nifti_cases], tmp_path / "out", model, modality="mri",
                      calibration=_calibration(_identity(model)), device="cpu")
    with pytest.raises(ValueError, match="class: calibration 'liver', this run 'scan'"):
        run_inference([nifti_cases], tmp_path / "out", model, modality="ct",
                      calibration=_calibration(_identity(model), class_name="liver"), device="cpu")


def test_mismatch_can_be_allowed_explicitly(tmp_path, nifti_cases, caplog):
    model = IntensityModel()
    other = _identity(model) | {"weights_sha256": "0" * 64}
    summary = run_inference([nifti_cases], tmp_path / "out", model, modality="ct", calibration=_calibration(other),
                            allow_calibration_mismatch=True, device="cpu")
    assert summary["done"] == 3 and "fitted with other settings (allowed): weights_sha256" in caplog.text
    cases = json.loads((tmp_path / "out" / "scores.json").read_text())["cases"]
    assert all("normal_percentile" in c for c in cases)


def test_auto_modality_is_checked_per_case(tmp_path, nifti_cases):
    """Under --modality auto the preset is known per case: a case of another preset fails alone."""
    model = IntensityModel()
    summary = run_inference([nifti_cases], tmp_path / "out", model, calibration=_calibration(_identity(model)),
                            device="cpu")
    assert summary["all_failed"]  # the blob volumes hold no air: auto picks mri for each, the calibration is ct
    assert "modality: calibration 'ct', this run 'mri'" in summary["failed"][0]["error"]


def test_few_normal_references_warn(caplog):
    pixels = PixelStats()
    pixels.add(np.arange(10.0), np.random.default_rng(0))
    ClassCalibration.fit("scan", "scan", "medical", list(range(9)), pixels)
    assert "from only 9 normal slice(s) (recommended: at least 20)" in caplog.text
    caplog.clear()
    ClassCalibration.fit("scan", "scan", "medical", list(range(20)), pixels)
    assert "normal slice(s)" not in caplog.text


def test_docs_state_the_percentile_formula_the_code_uses():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "outputs.md").read_text()
    assert "`normal_percentile` = (k + 0.5) / (n + 1), where k of the n normal reference slices" in docs
    cal = ClassCalibration("scan", "scan", "medical", [1.0, 2.0, 3.0, 4.0], 2.5, 1.0, 0.0, 1.0, {})
    k, n = 2, 4  # two of four normal slices score at most 2.5
    assert cal.percentile(2.5) == (k + 0.5) / (n + 1)


def test_map_probability_is_the_normal_cdf():
    pixels = PixelStats()
    pixels.add(np.arange(101.0), np.random.default_rng(0))  # every value kept: the table is exact
    cal = ClassCalibration.fit("scan", "scan", "medical", [1.0, 2.0], pixels)
    assert len(cal.pixel_cdf) == 1001
    np.testing.assert_allclose(cal.map_probability(np.array([-5.0, 0.0, 25.0, 50.0, 99.0, 100.0, 1e9])),
                               [0.0, 0.0, 0.25, 0.5, 0.99, 1.0, 1.0], atol=1e-6)
    values = np.random.default_rng(1).normal(50, 30, (7, 6, 2))
    mapped = cal.map_probability(values)
    assert mapped.shape == values.shape and mapped.dtype == np.float32
    order = np.argsort(values, axis=None)
    assert np.all(np.diff(mapped.ravel()[order]) >= 0)  # monotone: ranks are kept


def test_map_probability_of_constant_references():
    pixels = PixelStats()
    pixels.add(np.full(50, 0.3), np.random.default_rng(0))
    cal = ClassCalibration.fit("scan", "scan", "medical", [1.0, 2.0], pixels)
    np.testing.assert_array_equal(cal.map_probability(np.array([0.29, 0.3, 0.31])), [0.0, 1.0, 1.0])


def test_format_1_file_loads_and_asks_for_a_refit_for_probabilities(tmp_path):
    from aaclip_med.inference import InferenceOptions

    entry = {"class_name": "scan", "description": "scan", "domain": "medical", "image_scores": [1.0, 2.0],
             "image_mean": 1.5, "image_std": 0.7, "pixel_mean": 0.0, "pixel_std": 1.0, "pixel_quantiles": {}}
    (tmp_path / "old.json").write_text(json.dumps({"format_version": 1, "classes": {"scan": entry}}))
    old = load_calibration(tmp_path / "old.json")
    assert old.get("scan").z(2.2) == pytest.approx(1.0)  # still good for scores
    with pytest.raises(ValueError, match="fit it again with --calibrate-normals.*--pmap-values raw"):
        old.get("scan").map_probability(np.zeros(3))
    with pytest.raises(ValueError, match=r"pmap_values='probability': .*\['scan'\] have no table.*pass pmap_values=raw"):
        InferenceOptions().resolved_pmap_values(old)  # the default with a calibration is probability
    assert InferenceOptions(pmap_values="raw").resolved_pmap_values(old) == "raw"
    saved = json.loads(save_calibration(old, tmp_path / "new.json").read_text())
    assert saved["format_version"] == 2


def test_dicom_run_with_calibration_writes_probabilities(tmp_path, caplog):
    import pydicom

    from tests._synthetic import write_dicom_series
    from tests.inference.conftest import blob_volume

    volume = blob_volume(shape=(16, 18, 4), center=(6, 11, 2))
    write_dicom_series(tmp_path / "in" / "ser", np.moveaxis(volume, -1, 0).round().astype(np.int16))
    pixels = PixelStats()
    pixels.add(np.random.default_rng(0).normal(0.0, 0.05, 4096), np.random.default_rng(0))
    calibration = Calibration({"scan": ClassCalibration.fit("scan", "scan", "medical", [0.0, 0.1], pixels, "ct")})
    run_inference([tmp_path / "in"], tmp_path / "raw", IntensityModel(), modality="ct", dicom=True, device="cpu")
    assert "no calibration: the DICOM Parametric Maps hold raw map values" in caplog.text
    run_inference([tmp_path / "in"], tmp_path / "prob", IntensityModel(), modality="ct", dicom=True, device="cpu",
                  calibration=calibration)
    raw, prob = (pydicom.dcmread(tmp_path / name / "ser_pmap.dcm") for name in ("raw", "prob"))
    np.testing.assert_allclose(prob.pixel_array, calibration.get("scan").map_probability(raw.pixel_array), atol=1e-7)
    assert prob.ContentLabel == "ANOMALY_PROB" and raw.ContentLabel == "ANOMALY_RAW"
    assert json.loads((tmp_path / "prob" / "run.json").read_text())["pmap_values"] == "probability"
