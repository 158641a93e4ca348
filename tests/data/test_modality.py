import pytest
import torch
from monai.data import MetaTensor

from aaclip_med.data.modality import get_modality, list_modalities, preset_transforms
from aaclip_med.keys import Domain


def test_registry_lists_and_copies():
    names = list_modalities()
    assert {"ct", "ct-liver", "ct-brain", "ct-lung", "ct-bone", "ct-soft-tissue", "mri", "oct", "endoscopy", "photo"} <= set(names)
    preset = get_modality("ct")
    preset["window"] = "lung"
    assert get_modality("ct")["window"] == "abdomen"
    assert get_modality("photo")["domain"] == Domain.INDUSTRIAL


def test_unknown_lists_choices():
    with pytest.raises(ValueError, match="choose one of .*'photo'"):
        get_modality("xray")


def test_custom_ct_window_dict():
    (step,) = preset_transforms({"kind": "ct", "window": (50, 100)})
    assert float(step({"image": torch.tensor([[[50.0]]])})["image"]) == 0.5


def test_endoscopy_black_frame_removed_with_mask():
    img = torch.zeros(3, 10, 12)
    img[:, 2:8, 3:9] = 200.0
    mask = torch.zeros(1, 10, 12)
    mask[0, 4, 4] = 1
    preset = get_modality("endoscopy") | {"remove_black_frame": True}
    d = {"image": MetaTensor(img), "mask": MetaTensor(mask)}
    for step in preset_transforms(preset, "image", "mask"):
        d = step(d)
    assert tuple(d["image"].shape) == (3, 6, 6) and tuple(d["mask"].shape) == (1, 6, 6)
    assert float(d["mask"][0, 2, 1]) == 1 and float(d["image"].min()) == pytest.approx(200 / 255)
