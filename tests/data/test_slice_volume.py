import numpy as np
import pytest
import SimpleITK as sitk
from nibabel.testing import data_path

from aaclip_med.data.errors import DataError
from aaclip_med.data.loading import load_image
from aaclip_med.data.slicing import SliceVolume, resolve_axis, restack_slices, slice_affine


def _flip(lps):
    return np.asarray(lps) * [-1, -1, 1]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_nifti_slices_map_pixels_like_simpleitk(nifti_volume, axis):
    path, data = nifti_volume
    volume = load_image(path)  # nibabel through MONAI
    ref = sitk.ReadImage(str(path))  # second library
    slices = SliceVolume(axis=axis)(volume)
    assert len(slices) == data.shape[axis]
    for item in slices:
        k = item.meta["slice_index"]
        assert item.meta["slice_axis"] == axis and item.meta["case_id"] == "case01"
        for i, j in [(0, 0), (item.shape[1] - 1, item.shape[2] - 1), (1, 1)]:
            voxel = [i, j]
            voxel.insert(axis, k)
            world = (np.asarray(item.affine) @ [i, j, 0, 1])[:3]
            np.testing.assert_allclose(world, _flip(ref.TransformIndexToPhysicalPoint(voxel)), atol=1e-4)
            assert float(item[0, i, j]) == data[tuple(voxel)]


def test_dicom_series_slices_match_each_file(dicom_series):
    folder, files = dicom_series
    for item in SliceVolume()(load_image(folder)):
        ref = sitk.ReadImage(str(files[item.meta["slice_index"]]["path"]))  # the slice's own file
        for i, j in [(0, 0), (5, 4), (3, 1)]:
            world = (np.asarray(item.affine) @ [i, j, 0, 1])[:3]
            np.testing.assert_allclose(world, _flip(ref.TransformIndexToPhysicalPoint((j, i, 0))), atol=1e-3)
            assert float(item[0, i, j]) == sitk.GetArrayFromImage(ref)[0, i, j]


def test_range_stride_and_skip_empty(dicom_series):
    volume = load_image(dicom_series[0])  # slice 0 is all air
    assert [s.meta["slice_index"] for s in SliceVolume(start=1, stop=4, stride=2)(volume)] == [1, 3]
    assert [s.meta["slice_index"] for s in SliceVolume(skip_empty=True)(volume)] == [1, 2, 3]


def test_named_planes():
    affine = np.diag([1.0, 1.0, 1.0, 1.0])[:, [0, 2, 1, 3]]  # voxel axis 1 runs along S
    assert resolve_axis("axial", affine) == 1
    assert resolve_axis("sagittal", affine) == 0
    with pytest.raises(ValueError, match="axis must be"):
        SliceVolume(axis="oblique")


def test_2d_source_is_one_slice(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 6), np.uint8)).save(tmp_path / "a.png")
    (item,) = SliceVolume()(load_image(tmp_path / "a.png"))
    assert item.meta["slice_axis"] == -1 and item.meta["source_shape"] == (4, 6)
    out = restack_slices([item[0]], [item.meta])
    assert tuple(out.shape) == (1, 4, 6)


def test_restack_is_exact_inverse_on_real_volume():
    volume = load_image(f"{data_path}/anatomical.nii")
    slices = SliceVolume(axis=1)(volume)
    out = restack_slices([s[0] for s in slices], [s.meta for s in slices])
    assert out.shape == volume.shape
    np.testing.assert_array_equal(out.numpy(), volume.numpy())
    np.testing.assert_allclose(np.asarray(out.affine), np.asarray(volume.affine))


def test_restack_partial_and_errors(nifti_volume):
    volume = load_image(nifti_volume[0])
    slices = SliceVolume(start=1, stride=2)(volume)  # slices 1 only of 3
    out = restack_slices([s[0] * 0 + 1 for s in slices], [s.meta for s in slices])
    assert float(out[0, :, :, 1].min()) == 1 and float(out[0, :, :, 0].max()) == 0
    with pytest.raises(DataError, match="shape"):
        restack_slices([np.zeros((2, 2))], [slices[0].meta])
    with pytest.raises(DataError, match="twice"):
        restack_slices([slices[0][0]] * 2, [slices[0].meta] * 2)


def test_slice_affine_translation():
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    np.testing.assert_allclose(slice_affine(affine, 2, 5)[:3, 3], [0, 0, 20])
