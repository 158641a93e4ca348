"""Normal-reference calibration: the numbers, fitting on references, storage, use at inference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aaclip_med.data.synthetic import write_nifti
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
