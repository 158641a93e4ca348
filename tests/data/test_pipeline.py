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


def test_synthetic_region_and_mask_coincide_after_the_whole_training_pipeline():
    # issue 34: the planted pixels must be where mask == 1 after resizing, rotation, shift and flips.
    # The same seed with the sample labelled anomalous skips the planting (a real anomaly passes
    # unchanged) but draws the same geometry, so the two outputs differ only where it planted.
    rng = np.random.default_rng(0)
    image = MetaTensor(torch.tensor(rng.integers(40, 200, (3, 64, 64)), dtype=torch.float32),
                       meta={"intensity_max": 255.0})
    base = {"image": image, "mask": MetaTensor(torch.zeros(1, 64, 64)), "label": 0.0, "class_name": "x"}
    pipeline = training_transforms("photo", 64, stage=1, synthetic_kinds="cutpaste", synthetic_probability=1.0)
    still = torch.as_tensor(inference_transforms("photo", 64)(dict(base))["image"])  # no geometry
    moved = 0
    for seed in range(12):
        planted = pipeline.set_random_state(seed=seed)(dict(base))
        clean = pipeline.set_random_state(seed=seed)({**base, "label": 1.0})
        mask = torch.as_tensor(planted["mask"])[0] > 0.5
        if not mask.any():
            continue
        changed = (torch.as_tensor(planted["image"]) != torch.as_tensor(clean["image"])).any(dim=0)
        near = torch.nn.functional.max_pool2d(mask[None, None].float(), 5, 1, 2)[0, 0] > 0  # bicubic rings
        assert changed[mask].float().mean() > 0.7 and not (changed & ~near).any()
        moved += int(not torch.equal(torch.as_tensor(clean["image"]), still))
    assert moved >= 6  # most draws rotated, shifted or flipped the pair
