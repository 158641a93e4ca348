"""NIfTI overlays keep the source's sform/qform (matrices and codes) and its units; DICOM gives scanner/mm."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from aaclip_med.data.loading import load_image
from aaclip_med.inference import run_inference
from aaclip_med.inference.writers.nifti import write_nifti_mask, write_nifti_overlay
from tests._synthetic import oblique_affine, write_dicom_series
from tests.inference.conftest import blob_volume

# an aligned (template) space rotated and shifted against the scanner space the qform keeps; same
# voxel size (a header whose sform and pixdim disagree is rewritten by MONAI's reader)
_SCANNER = oblique_affine()
_SPACING = np.linalg.norm(_SCANNER[:3, :3], axis=0)
_ALIGNED = np.array([[0.0, -_SPACING[1], 0.0, 40.0], [_SPACING[0], 0.0, 0.0, -12.0],
                     [0.0, 0.0, _SPACING[2], 7.0], [0.0, 0.0, 0.0, 1.0]])


def _source(path, sform_code: int, qform_code: int, units: tuple[str, str]):
    image = nib.Nifti1Image(blob_volume(), _SCANNER)
    image.set_qform(_SCANNER, code=qform_code)
    image.set_sform(_ALIGNED if sform_code else _SCANNER, code=sform_code)
    image.header.set_xyzt_units(*units)
    nib.save(image, str(path))
    return nib.load(str(path))


CODES = [(2, 0), (1, 1), (0, 1), (1, 0), (2, 1), (4, 1), (3, 2), (0, 0)]
UNITS = [("mm", "sec"), ("micron", "unknown"), ("unknown", "unknown"), ("meter", "msec")]


@pytest.mark.parametrize(("sform_code", "qform_code"), CODES)
def test_overlay_keeps_each_pair_of_codes(tmp_path, sform_code, qform_code):
    source = _source(tmp_path / "src.nii.gz", sform_code, qform_code, ("mm", "sec"))
    loaded = load_image(tmp_path / "src.nii.gz")
    out = write_nifti_overlay(loaded * 0.5, loaded.affine, tmp_path / "map.nii.gz", source=tmp_path / "src.nii.gz")
    overlay = nib.load(str(out))
    assert (int(overlay.header["sform_code"]), int(overlay.header["qform_code"])) == (sform_code, qform_code)
    np.testing.assert_allclose(overlay.get_sform(), source.get_sform(), atol=1e-5)
    np.testing.assert_allclose(overlay.get_qform(), source.get_qform(), atol=1e-5)
    np.testing.assert_allclose(overlay.affine, source.affine, atol=1e-5)
    assert overlay.shape == source.shape and overlay.get_data_dtype() == np.float32
    np.testing.assert_allclose(overlay.get_fdata(), 0.5 * source.get_fdata(), rtol=1e-6)


@pytest.mark.parametrize("units", UNITS)
def test_overlay_and_mask_keep_the_units(tmp_path, units):
    source = _source(tmp_path / "src.nii.gz", 1, 1, units)
    loaded = load_image(tmp_path / "src.nii.gz")
    for path in (write_nifti_overlay(loaded, loaded.affine, tmp_path / "map.nii.gz", source=tmp_path / "src.nii.gz"),
                 write_nifti_mask(loaded, loaded.affine, 100.0, tmp_path / "mask.nii.gz", source=tmp_path / "src.nii.gz")):
        header = nib.load(str(path)).header
        assert header.get_xyzt_units() == source.header.get_xyzt_units() == units
        np.testing.assert_allclose(header.get_zooms(), source.header.get_zooms())


def test_inference_overlays_keep_the_nifti_header(tmp_path, fake_model):
    """Through the cohort run (what users call): sform 2 / qform 0 and mm come back as they went in."""
    folder = tmp_path / "cases"
    folder.mkdir()
    source = _source(folder / "aligned.nii.gz", 2, 0, ("mm", "sec"))
    run_inference([folder], tmp_path / "out", fake_model, modality="mri", threshold=0.5, device="cpu")
    for name in ("aligned_anomaly.nii.gz", "aligned_anomaly_mask.nii.gz"):
        header = nib.load(str(tmp_path / "out" / name)).header
        assert (int(header["sform_code"]), int(header["qform_code"])) == (2, 0), name
        assert header.get_xyzt_units() == ("mm", "sec")
        np.testing.assert_allclose(header.get_sform(), source.get_sform(), atol=1e-5)


def test_dicom_overlay_is_scanner_space_in_mm(tmp_path, fake_model):
    volume = blob_volume(shape=(16, 18, 4), center=(6, 11, 2))
    write_dicom_series(tmp_path / "in" / "ser", np.moveaxis(volume, -1, 0).round().astype(np.int16))
    run_inference([tmp_path / "in"], tmp_path / "out", fake_model, modality="ct", device="cpu")
    overlay = nib.load(str(tmp_path / "out" / "ser_anomaly.nii.gz"))
    assert (int(overlay.header["sform_code"]), int(overlay.header["qform_code"])) == (1, 1)
    assert overlay.header.get_xyzt_units()[0] == "mm"
    np.testing.assert_allclose(overlay.get_sform(), overlay.get_qform(), atol=1e-4)


def test_an_inconsistent_source_header_gets_the_grid_the_map_was_computed_on(tmp_path, caplog):
    """sform voxel size != pixdim: MONAI's reader falls back to the qform; the overlay says so, codes kept."""
    image = nib.Nifti1Image(blob_volume(), _SCANNER)
    image.set_qform(_SCANNER, code=1)
    image.set_sform(_SCANNER @ np.diag([2.0, 2.0, 1.0, 1.0]), code=2)  # disagrees with pixdim
    nib.save(image, str(tmp_path / "src.nii.gz"))
    loaded = load_image(tmp_path / "src.nii.gz")
    out = nib.load(str(write_nifti_overlay(loaded, loaded.affine, tmp_path / "map.nii.gz", source=tmp_path / "src.nii.gz")))
    np.testing.assert_allclose(out.affine, np.asarray(loaded.affine), atol=1e-4)
    assert (int(out.header["sform_code"]), int(out.header["qform_code"])) == (2, 1)
    assert "disagree with pixdim" in caplog.text
