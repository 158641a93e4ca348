"""Bad and unusual image files through the Python API (load_image / ManifestDataset).

Each bad file must give a DataError that names the file and the problem; unusual but valid files
(1 x 1, 16-bit, RGBA, 4D NIfTI) must load with a documented result. The CLI runs of the same files
are in test_cohort_infer.py.
"""

from __future__ import annotations

import logging
import tracemalloc

import numpy as np
import pydicom
import pytest
import torch

from aaclip_med.data import DataError, ManifestDataset, load_image
from aaclip_med.data.loading import DEFAULT_MAX_PIXELS, LoadSourced

from ._files import nifti, truncate, write_constant_png, write_png, write_series


def _refused(path, *needles, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_image(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message
    return message


def test_truncated_dicom_inside_pixel_data_named(tmp_path):
    item = write_series(tmp_path / "s", depth=3, size=64)[1]
    truncate(item["path"], -3000)
    _refused(item["path"], "is corrupt (pixel data 5192 bytes of 8192 expected)")


def test_truncated_dicom_in_header_named(tmp_path):
    item = write_series(tmp_path / "s", depth=3, size=64)[1]
    truncate(item["path"], 300)
    _refused(item["path"], "without pixel data", "cut short")


def test_truncated_slice_in_series_names_the_slice(tmp_path):
    items = write_series(tmp_path / "s", depth=3, size=64)
    truncate(items[1]["path"], -3000)
    _refused(items[1]["path"].parent, items[1]["path"].name)


def test_corrupt_dicom_with_valid_preamble(tmp_path):
    path = tmp_path / "corrupt.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 4)
    message = str(pytest.raises(DataError, load_image, path).value)
    assert "corrupt.dcm" in message


def test_dicom_without_pixel_data(tmp_path):
    item = write_series(tmp_path / "s", depth=1)[0]
    ds = pydicom.dcmread(item["path"])
    del ds.PixelData
    ds.save_as(item["path"])
    _refused(item["path"], "without pixel data")


def test_mixed_series_folder_takes_largest_or_named_series(tmp_path):
    big = write_series(tmp_path / "mixed", depth=4, seed=1)
    small = write_series(tmp_path / "mixed", depth=2, seed=2)
    assert load_image(tmp_path / "mixed").shape[-1] == 4
    uid = str(pydicom.dcmread(small[0]["path"]).SeriesInstanceUID)
    assert load_image(tmp_path / "mixed", series_uid=uid).shape[-1] == 2
    message = _refused(tmp_path / "mixed", "has no series", series_uid="1.2.3.4")
    assert str(pydicom.dcmread(big[0]["path"]).SeriesInstanceUID) in message  # lists the choices


def test_uneven_slice_spacing_refused(tmp_path):
    items = write_series(tmp_path / "s", depth=4)
    ds = pydicom.dcmread(items[3]["path"])
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], ds.ImagePositionPatient[2] + 7]
    ds.save_as(items[3]["path"])
    _refused(tmp_path / "s", "not evenly spaced", items[3]["path"].name)


def test_missing_middle_slice_refused(tmp_path):
    items = write_series(tmp_path / "s", depth=5)
    items[2]["path"].unlink()
    _refused(tmp_path / "s", "not evenly spaced")


def test_duplicate_slice_position_refused(tmp_path):
    items = write_series(tmp_path / "s", depth=4)
    ds = pydicom.dcmread(items[1]["path"])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "s" / "copy.dcm")
    _refused(tmp_path / "s", "not evenly spaced")


def test_mixed_orientation_refused(tmp_path):
    items = write_series(tmp_path / "s", depth=4)
    ds = pydicom.dcmread(items[2]["path"])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(items[2]["path"])
    _refused(tmp_path / "s", "differ in orientation")


def test_even_oblique_series_still_loads(tmp_path):
    from tests._synthetic import write_dicom_series

    volume = np.arange(4 * 6 * 5).reshape(4, 6, 5) * 7 - 100  # (D, H, W) HU, every voxel its own value
    slices = write_dicom_series(tmp_path / "s", volume, angle_deg=20.0)  # shuffled file order, oblique
    assert sorted(str(item["path"]) for item in slices) != [str(item["path"]) for item in slices]  # really shuffled
    image = load_image(tmp_path / "s")
    assert image.shape == (1, 6, 5, 4)  # (C, rows, columns, slices)
    np.testing.assert_array_equal(image[0].numpy(), volume.transpose(1, 2, 0))  # slices back in spatial order
    affine = np.asarray(image.affine)
    for k, item in enumerate(slices):
        for i, j in [(0, 0), (5, 4), (2, 3)]:
            lps = item["position"] + j * item["spacing"][1] * item["row_dir"] + i * item["spacing"][0] * item["col_dir"]
            ras = affine @ [i, j, k, 1]
            np.testing.assert_allclose(ras[:3] * [-1, -1, 1], lps, atol=1e-4)  # voxel (i, j, k) where the tags put it


def test_4d_nifti_keeps_one_volume(tmp_path, caplog):
    data = np.stack([np.full((3, 4, 5), t, np.float32) for t in range(2)], axis=-1)
    path = nifti(tmp_path / "four.nii.gz", data)
    with caplog.at_level(logging.INFO, logger="aaclip_med"):
        image = load_image(path)
    assert image.shape == (1, 3, 4, 5) and float(image.max()) == 0.0
    assert "4D NIfTI, keeping volume 0 of 2" in caplog.text
    assert float(load_image(path, volume_index=1).min()) == 1.0
    _refused(path, "volume_index 5 is out of range", volume_index=5)


@pytest.mark.parametrize("shape", [(0, 4, 3), (3, 4, 0)])
def test_zero_sized_nifti(tmp_path, shape):
    _refused(nifti(tmp_path / "zero.nii.gz", np.ones(shape, np.float32)), "zero-size axis")


def test_empty_nifti_file(tmp_path):
    (tmp_path / "empty.nii").write_bytes(b"")
    _refused(tmp_path / "empty.nii", "empty (0 bytes)")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels(tmp_path, value):
    data = np.ones((3, 4, 5), np.float32)
    data[1, 2, 3] = value
    _refused(nifti(tmp_path / "bad.nii.gz", data), "1 NaN/Inf voxel(s)")


def test_one_pixel_image_loads(tmp_path):
    image = load_image(write_png(tmp_path / "one.png", np.full((1, 1), 200, np.uint8)))
    assert image.shape == (1, 1, 1) and float(image) == 200.0


def test_huge_image_refused_from_header_with_bounded_memory(tmp_path):
    path = write_constant_png(tmp_path / "huge.png", 20000, 20000, value=3)
    assert path.stat().st_size < 5_000_000
    tracemalloc.start()
    try:
        _refused(path, "exceeds the limit", str(DEFAULT_MAX_PIXELS))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000  # 400 M pixels were never decoded


def test_pixel_limit_is_configurable(tmp_path):
    path = write_constant_png(tmp_path / "wide.png", 300, 200, value=9)
    _refused(path, "300 x 200 = 60000 pixels exceeds the limit of 50000", max_pixels=50_000)
    assert load_image(path, max_pixels=None).shape == (1, 200, 300)
    loader = LoadSourced("image", max_pixels=50_000)
    with pytest.raises(DataError, match="wide.png"):
        loader({"image": path})


def test_16_bit_png_keeps_its_full_scale(tmp_path):
    array = np.array([[0, 1000], [40000, 65535]], np.uint16)
    image = load_image(write_png(tmp_path / "deep.png", array))
    assert image.meta["intensity_max"] == 65535.0
    assert torch.equal(image[0], torch.as_tensor(array.astype(np.float32)))


def test_rgba_png_drops_alpha(tmp_path):
    array = np.zeros((4, 5, 4), np.uint8)
    array[..., 0], array[..., 3] = 10, 0  # fully transparent red
    image = load_image(write_png(tmp_path / "rgba.png", array))
    assert image.shape == (3, 4, 5) and float(image[0].max()) == 10.0


def _one_record_dataset(tmp_path, mask: np.ndarray) -> ManifestDataset:
    write_png(tmp_path / "img.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "mask.png", mask)
    record = {"image_path": "img.png", "label": 1, "class_name": "scan", "mask_path": "mask.png"}
    return ManifestDataset([record], tmp_path)


def test_mask_of_wrong_size(tmp_path):
    with pytest.raises(DataError, match=r"mask.png: mask size \(8, 9\) differs from image size \(8, 8\)"):
        _one_record_dataset(tmp_path, np.zeros((8, 9), np.uint8))[0]


def test_mask_with_label_values_is_anomalous_wherever_non_zero(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[:2], mask[2:4] = 1, 2  # two defect ids, as in VisA's masks
    sample = _one_record_dataset(tmp_path, mask)[0]
    np.testing.assert_array_equal(sample["mask"][0].numpy(), (mask != 0).astype(np.float32))


def test_mask_stored_as_255_is_binarised(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[:2] = 255
    sample = _one_record_dataset(tmp_path, mask)[0]
    assert set(torch.unique(sample["mask"]).tolist()) == {0.0, 1.0}
