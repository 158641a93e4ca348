import nibabel as nib
import numpy as np
import pydicom

from tests._synthetic import oblique_affine, oblique_orientation, write_multiframe_dicom


def test_orientation_is_orthonormal_and_oblique():
    row, col = oblique_orientation(20)
    np.testing.assert_allclose([row @ row, col @ col, row @ col], [1, 1, 0], atol=1e-12)
    assert np.count_nonzero(np.abs(row) > 1e-6) >= 2


def test_series_files_shuffled_with_known_tags(dicom_series):
    _, slices = dicom_series
    numbers = [pydicom.dcmread(s["path"]).InstanceNumber for s in slices]
    assert sorted(numbers) == [1, 2, 3, 4] and numbers != [1, 2, 3, 4]
    ds = pydicom.dcmread(slices[2]["path"])
    np.testing.assert_allclose(ds.ImagePositionPatient, slices[2]["position"], atol=1e-6)


def test_nifti_affine_roundtrip(nifti_volume):
    path, data = nifti_volume
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, oblique_affine(), atol=1e-5)
    np.testing.assert_array_equal(img.get_fdata(), data)


def test_multiframe(tmp_path):
    path = write_multiframe_dicom(tmp_path / "oct.dcm", np.ones((3, 4, 5)))
    assert pydicom.dcmread(path).pixel_array.shape == (3, 4, 5)
