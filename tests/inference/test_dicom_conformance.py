"""dciodvfy (dicom3tools) finds no error in the SEG and Parametric Map, whatever the map's range."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from aaclip_med.inference.writers.dicom_pmap import MAX_WINDOW_WIDTH, display_window, write_parametric_map
from aaclip_med.inference.writers.dicom_seg import write_segmentation
from tests._synthetic import write_dicom_series
from tests._tools import dciodvfy

SHAPE = (16, 18, 4)  # rows, columns, slices


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    volume = np.zeros(SHAPE[2:] + SHAPE[:2], np.int16)
    volume[2, 5:9, 6:10] = 100
    return [s["path"] for s in write_dicom_series(tmp_path_factory.mktemp("src") / "ser", volume)]


RANGES = {
    "constant": np.full(SHAPE, 0.3),
    "zeros": np.zeros(SHAPE),
    "tiny": np.random.default_rng(0).random(SHAPE) * 1e-4,
    "denormal-scale": np.random.default_rng(1).random(SHAPE) * 1e-30,
    "unit": np.random.default_rng(2).random(SHAPE),
    "negative": np.linspace(-5.0, 3.0, np.prod(SHAPE)).reshape(SHAPE),
    "huge": np.random.default_rng(3).random(SHAPE) * 1e30,
    "float32-max": np.where(np.arange(np.prod(SHAPE)).reshape(SHAPE) % 2, np.finfo(np.float32).max, 0.0),
}


@pytest.mark.parametrize("name", sorted(RANGES))
def test_parametric_map_has_no_dciodvfy_error(name, series, tmp_path):
    values = RANGES[name].astype(np.float32)
    path = write_parametric_map(values, series, tmp_path / "pmap.dcm")
    errors, warnings = dciodvfy(path)
    assert errors == []
    assert not [w for w in warnings if "QUANTITY" in w or "Unrecognized defined term" in w]
    ds = pydicom.dcmread(path)
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "VOLUME", "NONE"]
    window = ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    assert window.VOILUTFunction == "LINEAR_EXACT"
    assert 0 < float(window.WindowWidth) <= MAX_WINDOW_WIDTH
    frames = np.frombuffer(ds.FloatPixelData, np.float32)
    assert np.array_equal(np.sort(frames), np.sort(values.ravel()))  # values untouched by the window


def test_display_window_spans_the_range():
    assert display_window(0.2, 0.7) == pytest.approx((0.45, 0.5))
    assert display_window(1e-5, 3e-5) == pytest.approx((2e-5, 2e-5))
    assert display_window(0.3, 0.3) == (0.3, 1.0)  # constant: a unit window on its value
    centre, width = display_window(0.0, 1e30)
    assert width == MAX_WINDOW_WIDTH and centre == pytest.approx(5e29)


@pytest.mark.parametrize("fill", ["empty", "one-voxel", "full"])
def test_segmentation_has_no_dciodvfy_error(fill, series, tmp_path):
    mask = np.zeros(SHAPE, bool)
    if fill == "one-voxel":
        mask[3, 4, 1] = True
    elif fill == "full":
        mask[:] = True
    errors, _ = dciodvfy(write_segmentation(mask, series, tmp_path / "seg.dcm"))
    assert errors == []


def test_laterality_comes_from_the_source(series, tmp_path):
    lateral = []
    for k, path in enumerate(series):
        ds = pydicom.dcmread(path)
        ds.Laterality = "L"
        ds.save_as(tmp_path / f"{k}.dcm")
        lateral.append(tmp_path / f"{k}.dcm")
    pmap = pydicom.dcmread(write_parametric_map(np.ones(SHAPE, np.float32), lateral, tmp_path / "pmap.dcm"))
    assert pmap.Laterality == "L"
