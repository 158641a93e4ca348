"""Overlays sit exactly on the source grid: shape, affine, and the physical position of a blob."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from aaclip_med.inference import run_inference
from tests._synthetic import write_dicom_series, write_nifti
from tests.inference.conftest import blob_volume

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def _argmax_world(path) -> np.ndarray:
    """RAS (mm) position of the overlay's maximum, via nibabel."""
    image = nib.load(str(path))
    index = np.unravel_index(np.argmax(np.asarray(image.dataobj)), image.shape)
    return nib.affines.apply_affine(image.affine, index)


def _sitk_argmax_lps(path) -> np.ndarray:
    """LPS (mm) position of the overlay's maximum, via SimpleITK (independent of nibabel)."""
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)  # (z, y, x)
    index = np.unravel_index(np.argmax(array), array.shape)[::-1]
    return np.asarray(image.TransformIndexToPhysicalPoint([int(i) for i in index]))


def test_nifti_overlay_matches_source_grid_and_blob(tmp_path, fake_model):
    center = (12, 7, 3)
    source = write_nifti(tmp_path / "in" / "vol.nii.gz", blob_volume(center=center))
    summary = run_inference([source], tmp_path / "out", fake_model, modality="ct", device="cpu")
    assert summary["done"] == 1 and not summary["failed"]
    overlay = tmp_path / "out" / "vol_anomaly.nii.gz"
    src, out = nib.load(str(source)), nib.load(str(overlay))
    assert out.shape == src.shape and out.get_data_dtype() == np.float32
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    s_src, s_out = sitk.ReadImage(str(source)), sitk.ReadImage(str(overlay))
    assert s_out.GetSize() == s_src.GetSize()
    np.testing.assert_allclose(s_out.GetOrigin(), s_src.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(s_out.GetDirection(), s_src.GetDirection(), atol=1e-5)
    np.testing.assert_allclose(s_out.GetSpacing(), s_src.GetSpacing(), atol=1e-5)
    blob_ras = nib.affines.apply_affine(src.affine, center)
    tolerance = np.linalg.norm(np.linalg.norm(src.affine[:3, :3], axis=0)[:2])  # one in-plane voxel diagonal
    assert np.linalg.norm(_argmax_world(overlay) - blob_ras) <= tolerance
    assert np.linalg.norm(_sitk_argmax_lps(overlay) - _RAS_TO_LPS @ blob_ras) <= tolerance


def test_oblique_dicom_overlay_blob_at_physical_position(tmp_path, fake_model):
    volume = blob_volume(shape=(16, 18, 5), center=(6, 11, 2))  # (rows, columns, slices)
    slices = write_dicom_series(tmp_path / "in" / "ser", np.moveaxis(volume, -1, 0).round().astype(np.int16))
    run_inference([tmp_path / "in" / "ser"], tmp_path / "out", fake_model, modality="ct", device="cpu")
    overlay = tmp_path / "out" / "ser_anomaly.nii.gz"
    # the blob's LPS position from the DICOM tags: IPP + column index * column spacing * row cosine + ...
    info = slices[2]
    blob_lps = info["position"] + 11 * info["spacing"][1] * info["row_dir"] + 6 * info["spacing"][0] * info["col_dir"]
    tolerance = float(np.hypot(*info["spacing"]))
    assert nib.load(str(overlay)).shape == (16, 18, 5)
    assert np.linalg.norm(_RAS_TO_LPS @ _argmax_world(overlay) - blob_lps) <= tolerance
    assert np.linalg.norm(_sitk_argmax_lps(overlay) - blob_lps) <= tolerance
    # every voxel of the overlay sits where the same voxel of the source series sits (SimpleITK)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(s["path"]) for s in slices])
    src = reader.Execute()
    out = sitk.ReadImage(str(overlay))
    for index in [(0, 0, 0), (15, 17, 4), (3, 9, 1)]:  # (row, column, slice) in our array order
        np.testing.assert_allclose(out.TransformIndexToPhysicalPoint(index),
                                   src.TransformIndexToPhysicalPoint((index[1], index[0], index[2])), atol=1e-4)


def test_2d_nifti_keeps_pixel_spacing(tmp_path, fake_model):
    affine = np.diag([0.4, 0.7, 2.0, 1.0])
    affine[:3, 3] = (5.0, -3.0, 11.0)
    source = write_nifti(tmp_path / "in" / "flat.nii.gz", blob_volume(shape=(20, 18, 1), center=(4, 9, 0)), affine)
    run_inference([source], tmp_path / "out", fake_model, modality="ct", device="cpu")
    out = nib.load(str(tmp_path / "out" / "flat_anomaly.nii.gz"))
    assert out.shape == (20, 18, 1)
    np.testing.assert_allclose(out.affine, affine)
    assert np.unravel_index(np.argmax(np.asarray(out.dataobj)), out.shape)[:2] == (4, 9)
