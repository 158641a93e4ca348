import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from nibabel.testing import data_path
from PIL import Image
from pydicom.data import get_testdata_file

from aaclip_med.data.errors import DataError
from aaclip_med.data.loading import INTENSITY_MAX, LoadSource, load_image, source_kind
from tests._synthetic import write_multiframe_dicom, write_nifti


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_real_dicom_matches_simpleitk(name):
    path = get_testdata_file(name)
    image = load_image(path)
    ref = sitk.ReadImage(path)
    assert tuple(image.shape) == (1, ref.GetHeight(), ref.GetWidth())  # (C, rows, columns)
    np.testing.assert_allclose(image[0].numpy(), sitk.GetArrayFromImage(ref)[0], atol=1e-3)
    affine = np.asarray(image.affine)
    for i, j in [(0, 0), (10, 3), (ref.GetHeight() - 1, ref.GetWidth() - 1)]:
        lps = ref.TransformIndexToPhysicalPoint((j, i, 0))
        np.testing.assert_allclose((affine @ [i, j, 0, 1])[:3] * [-1, -1, 1], lps, atol=1e-3)


def test_ct_small_is_in_hounsfield_units():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(load_image(path)[0].numpy(), expected)


def test_anatomical_nifti():
    path = f"{data_path}/anatomical.nii"
    image = load_image(path)
    ref = nib.load(path)
    assert tuple(image.shape[1:]) == ref.shape[:3]
    np.testing.assert_allclose(np.asarray(image.affine), ref.affine, atol=1e-4)


def test_4d_nifti_selects_volume(tmp_path):
    data = np.stack([np.full((3, 4, 2), v, np.float32) for v in (1, 2, 3)], axis=-1)
    path = write_nifti(tmp_path / "dwi.nii.gz", data)
    assert float(LoadSource(volume_index=2)(path).max()) == 3
    assert load_image(path).shape[0] == 1
    with pytest.raises(DataError, match="volume_index 5"):
        load_image(path, volume_index=5)


def test_multiframe_dicom(tmp_path):
    frames = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    image = load_image(write_multiframe_dicom(tmp_path / "oct.dcm", frames))
    assert tuple(image.shape) == (1, 3, 4, 2)
    np.testing.assert_array_equal(image[0, :, :, 1].numpy(), frames[1])


@pytest.mark.parametrize(
    ("suffix", "array", "mode", "channels", "full_scale"),
    [
        (".png", np.full((5, 7), 40000, np.uint16), None, 1, 65535.0),
        (".tif", np.full((5, 7), 40000, np.uint16), None, 1, 65535.0),
        (".png", np.full((5, 7, 4), 200, np.uint8), "RGBA", 3, 255.0),
        (".jpg", np.full((5, 7, 3), 200, np.uint8), "RGB", 3, 255.0),
        (".bmp", np.full((5, 7), 9, np.uint8), "L", 1, 255.0),
    ],
)
def test_plain_images(tmp_path, suffix, array, mode, channels, full_scale):
    path = tmp_path / f"x{suffix}"
    Image.fromarray(array, mode).save(path)
    image = load_image(path)
    assert tuple(image.shape) == (channels, 5, 7)  # (C, H, W)
    assert image.meta[INTENSITY_MAX] == full_scale
    assert abs(float(image.max()) - float(array.max())) <= 3  # jpeg is lossy


def test_source_kind(tmp_path, dicom_series):
    assert source_kind(dicom_series[0]) == "dicom_series"
    assert source_kind(get_testdata_file("CT_small.dcm")) == "dicom"


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.png", None, "file not found"),
        ("empty.nii.gz", b"", "empty"),
        ("corrupt.png", b"not a png at all", "cannot be read"),
        ("corrupt.nii.gz", b"garbage" * 10, "cannot be read"),
        ("garbage.dcm", b"garbage" * 10, "is not a DICOM file .* inputs are DICOM files"),
        ("notes.txt", b"just some notes", "is not a DICOM file .* NIfTI"),
    ],
)
def test_bad_files_named(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=problem) as info:
        load_image(path)
    assert name in str(info.value) and "force=True" not in str(info.value)


def test_dicom_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(DataError, match="nopix.dcm: DICOM file without pixel data"):
        load_image(tmp_path / "nopix.dcm")


def test_nan_and_zero_size(tmp_path):
    data = np.ones((3, 3, 2), np.float32)
    data[1, 1, 1] = np.nan
    with pytest.raises(DataError, match="nan.nii.gz: holds 1 NaN/Inf"):
        load_image(write_nifti(tmp_path / "nan.nii.gz", data))
    with pytest.raises(DataError, match="zero.nii.gz"):
        load_image(write_nifti(tmp_path / "zero.nii.gz", np.ones((3, 0, 2), np.float32)))
