import numpy as np
import torch
from monai.data import MetaTensor
from PIL import Image

from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD
from aaclip_med.data.pipeline import inference_transforms, training_transforms


def _sample():
    mask = torch.zeros(1, 20, 30)
    mask[0, 5:10, 5:15] = 1
    return {"image": MetaTensor(torch.full((1, 20, 30), 40.0)), "mask": MetaTensor(mask)}


def test_inference_ct_to_clip_input():
    out = inference_transforms("ct-brain", image_size=16, mask_key="mask")(_sample())
    assert tuple(out["image"].shape) == (3, 16, 16) and tuple(out["mask"].shape) == (1, 16, 16)
    for c in range(3):  # 40 HU is the centre of the brain window: 0.5 everywhere, then CLIP statistics
        expected = torch.full((16, 16), (0.5 - CLIP_MEAN[c]) / CLIP_STD[c])
        torch.testing.assert_close(torch.as_tensor(out["image"][c]), expected, rtol=0, atol=1e-5)
    rectangle = _sample()["mask"][0].numpy().astype(np.uint8)
    expected_mask = np.asarray(Image.fromarray(rectangle).resize((16, 16), Image.NEAREST)).astype(np.float32)
    np.testing.assert_array_equal(out["mask"][0].numpy(), expected_mask)


def test_training_is_seeded():
    a = training_transforms("ct", 16, stage=2, seed=7)(_sample())
    b = training_transforms("ct", 16, stage=2, seed=7)(_sample())
    torch.testing.assert_close(a["image"].as_tensor(), b["image"].as_tensor())
    torch.testing.assert_close(a["mask"].as_tensor(), b["mask"].as_tensor())
    assert set(a["mask"].unique().tolist()) <= {0.0, 1.0}
    masks = {tuple(training_transforms("ct", 16, stage=1, seed=s)(_sample())["mask"].flatten().tolist())
             for s in range(8)}
    assert len(masks) > 1  # the seed drives the augmentation
