import numpy as np

from aaclip_med.data.loading import load_image
from aaclip_med.data.slicing import SliceVolumed
from tests._synthetic import write_nifti


def test_image_and_mask_cut_together_skip_on_image(tmp_path):
    image = np.zeros((3, 4, 5), np.float32)
    image[..., 1:4] = 1.0  # slices 0 and 4 are background
    mask = np.zeros_like(image)
    mask[1, 1, 2] = 1
    data = {
        "image": load_image(write_nifti(tmp_path / "c7.nii.gz", image)),
        "mask": load_image(write_nifti(tmp_path / "c7_mask.nii.gz", mask)),
        "label": 1.0,
    }
    out = SliceVolumed(keys=["image", "mask"], skip_empty=True)(data)
    assert [d["slice_index"] for d in out] == [1, 2, 3]
    assert all(d["case_id"] == "c7" and d["label"] == 1.0 for d in out)
    assert float(out[1]["mask"].max()) == 1 and float(out[0]["mask"].max()) == 0
    np.testing.assert_allclose(np.asarray(out[1]["mask"].affine), np.asarray(out[1]["image"].affine))
