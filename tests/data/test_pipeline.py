import torch
from monai.data import MetaTensor

from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD
from aaclip_med.data.pipeline import inference_transforms, training_transforms


def _sample():
    mask = torch.zeros(1, 20, 30)
    mask[0, 5:10, 5:15] = 1
    return {"image": MetaTensor(torch.full((1, 20, 30), 40.0)), "mask": MetaTensor(mask)}


def test_inference_ct_to_clip_input():
    out = inference_transforms("ct-brain", image_size=16, mask_key="mask")(_sample())
    assert tuple(out["image"].shape) == (3, 16, 16) and tuple(out["mask"].shape) == (1, 16, 16)
    expected = (0.5 - CLIP_MEAN[0]) / CLIP_STD[0]  # 40 HU is the centre of the brain window
    assert abs(float(out["image"][0, 8, 8]) - expected) < 1e-4
    assert set(out["mask"].unique().tolist()) == {0.0, 1.0}


def test_training_is_seeded():
    a = training_transforms("ct", 16, stage=2, seed=7)(_sample())
    b = training_transforms("ct", 16, stage=2, seed=7)(_sample())
    torch.testing.assert_close(a["image"].as_tensor(), b["image"].as_tensor())
    torch.testing.assert_close(a["mask"].as_tensor(), b["mask"].as_tensor())
    assert set(a["mask"].unique().tolist()) <= {0.0, 1.0}
