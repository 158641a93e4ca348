import numpy as np
import pytest

from aaclip_med.data.builders import build_manifest
from aaclip_med.data.errors import DataError
from tests._synthetic import write_dicom_series, write_nifti


def test_nifti_and_dicom_cases_one_line_per_slice(tmp_path):
    write_nifti(tmp_path / "images/p1.nii.gz", np.ones((4, 5, 3), np.float32))
    mask = np.zeros((4, 5, 3), np.uint8)
    mask[1, 1, 2] = 1
    write_nifti(tmp_path / "masks/p1.nii.gz", mask)
    write_dicom_series(tmp_path / "images/p2", np.zeros((2, 3, 3), int))
    records = build_manifest("cohort", tmp_path, modality="ct")
    assert [(r["case_id"], r["slice_index"], r["label"]) for r in records] == [
        ("p1", 0, 0.0), ("p1", 1, 0.0), ("p1", 2, 1.0), ("p2", 0, 0.0), ("p2", 1, 0.0)]
    assert records[0]["mask_path"] == "masks/p1.nii.gz" and records[3]["mask_path"] == ""
    assert records[3]["image_path"] == "images/p2" and records[0]["modality"] == "ct"


def test_mask_size_differs(tmp_path):
    write_nifti(tmp_path / "images/p1.nii.gz", np.ones((4, 5, 3), np.float32))
    write_nifti(tmp_path / "masks/p1.nii.gz", np.ones((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="p1.nii.gz: mask size"):
        build_manifest("cohort", tmp_path)
