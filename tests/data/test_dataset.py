import numpy as np
import pytest
import torch
from PIL import Image

from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD
from aaclip_med.data.dataset import ManifestDataset
from aaclip_med.data.errors import DataError
from aaclip_med.data.manifest import write_manifest
from aaclip_med.data.pipeline import inference_transforms
from tests._synthetic import write_nifti


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def _rec(image, label, mask=""):
    return {"image_path": image, "label": label, "class_name": "skin", "mask_path": mask}


def test_images_masks_and_transform(tmp_path):
    _png(tmp_path / "a.png", np.full((6, 8), 100))
    _png(tmp_path / "b.png", np.full((6, 8, 3), 50))
    mask = np.zeros((6, 8))
    mask[2, 3] = 255
    _png(tmp_path / "b_mask.png", mask)
    path = write_manifest([_rec("a.png", 0), _rec("b.png", 1, "b_mask.png")], tmp_path / "m.jsonl")
    ds = ManifestDataset(path, tmp_path, transform=inference_transforms("photo", 16, mask_key="mask"), known_classes={"skin"})
    normal, anomalous = ds[0], ds[1]
    assert tuple(normal["image"].shape) == (3, 16, 16) and float(normal["mask"].max()) == 0
    for c in range(3):  # a flat 8-bit gray 100: 100 / 255 in every channel, then CLIP statistics
        value = (100 / 255 - CLIP_MEAN[c]) / CLIP_STD[c]
        torch.testing.assert_close(torch.as_tensor(normal["image"][c]), torch.full((16, 16), value), rtol=0, atol=1e-6)
    expected = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((16, 16), Image.NEAREST)) != 0
    np.testing.assert_array_equal(anomalous["mask"][0].numpy(), expected.astype(np.float32))
    assert float(anomalous["mask"].sum()) == 6 and anomalous["class_name"] == "skin"  # pixel (2, 3) -> 3 rows x 2 columns


def test_volume_slice_record(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    write_nifti(tmp_path / "v.nii.gz", data)
    ds = ManifestDataset([_rec("v.nii.gz", 0) | {"slice_index": 2}], tmp_path)
    item = ds[0]
    np.testing.assert_array_equal(item["image"][0].numpy(), data[:, :, 2])
    assert item["image"].meta["slice_index"] == 2


def test_mask_of_another_size(tmp_path):
    _png(tmp_path / "a.png", np.zeros((6, 8)))
    _png(tmp_path / "m.png", np.zeros((5, 8)))
    with pytest.raises(DataError, match=r"m.png: mask size \(5, 8\) differs from image size \(6, 8\)"):
        ManifestDataset([_rec("a.png", 1, "m.png")], tmp_path)[0]


def test_mask_with_several_defect_ids_is_valid(tmp_path):
    # VisA masks hold one id per defect ({0, 1, 3}); every non-zero id is anomalous
    mask = np.zeros((6, 8))
    mask[0, :2], mask[3, 4:7] = 1, 3
    _png(tmp_path / "a.png", np.zeros((6, 8)))
    _png(tmp_path / "m.png", mask)
    out = ManifestDataset([_rec("a.png", 1, "m.png")], tmp_path)[0]["mask"]
    assert tuple(out.shape) == (1, 6, 8)
    np.testing.assert_array_equal(out[0].numpy(), (mask != 0).astype(np.float32))


def test_missing_mask_and_unknown_class(tmp_path):
    _png(tmp_path / "a.png", np.zeros((6, 8)))
    with pytest.raises(DataError, match="gone.png: mask file not found"):
        ManifestDataset([_rec("a.png", 1, "gone.png")], tmp_path)[0]
    with pytest.raises(DataError, match="no description"):
        ManifestDataset([_rec("a.png", 0)], tmp_path, known_classes={"bottle"})
