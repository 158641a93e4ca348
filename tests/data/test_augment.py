import math

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import RandAffined, RandFlipd, RandRotated

from aaclip_med.data import augment
from aaclip_med.data.augment import RandColorJitterd, colour_transforms, geometric_transforms
from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD
from aaclip_med.data.pipeline import training_transforms


def test_spec_numbers_are_pinned():
    # spec sections 7 and 8: rotation 30 deg, translation 15 %, each geometric step p 0.5,
    # brightness / contrast / saturation 0.5 each applied with p 0.7
    assert (augment.ROTATION_DEGREES, augment.TRANSLATION_FRACTION, augment.GEOMETRY_PROB) == (30.0, 0.15, 0.5)
    assert (augment.JITTER_STRENGTH, augment.JITTER_PROB) == (0.5, 0.7)
    rotate, shift, hflip, vflip = geometric_transforms(40)
    assert isinstance(rotate, RandRotated) and rotate.rand_rotate.range_x == pytest.approx((-math.pi / 6, math.pi / 6))
    assert isinstance(shift, RandAffined)
    assert tuple(shift.rand_affine.rand_affine_grid.translate_range) == pytest.approx((6.0, 6.0))  # 15 % of 40
    assert isinstance(hflip, RandFlipd) and hflip.flipper.spatial_axis == 1
    assert isinstance(vflip, RandFlipd) and vflip.flipper.spatial_axis == 0
    assert [t.prob for t in (rotate, shift, hflip, vflip)] == [0.5, 0.5, 0.5, 0.5]
    (jitter,) = colour_transforms(2)
    assert isinstance(jitter, RandColorJitterd) and jitter.jitter.adjust_prob == 0.7
    assert jitter.jitter.strengths == {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5}
    assert colour_transforms(1) == []
    with pytest.raises(ValueError, match="stage"):
        colour_transforms(3)


def _always(steps):
    for step in steps:
        step.prob = 1.0
    return steps


def test_rotation_pads_with_the_mean_colour_and_samples_nearest():
    # a normalised image whose pixels are 0..99 (+0.5) in every channel, rotated for sure
    values = torch.arange(100, dtype=torch.float32).reshape(1, 10, 10) + 0.5
    data = {"image": values.repeat(3, 1, 1), "mask": (values > 50).float()}
    rotate = _always(geometric_transforms(10)[:1])[0]
    rotate.set_random_state(3)
    out = rotate(data)
    image, mask = torch.as_tensor(out["image"]), torch.as_tensor(out["mask"])
    assert not torch.equal(image, data["image"])
    padded = image == 0  # zero of a normalised image = the CLIP mean colour (not black)
    assert padded.any()
    kept = image[~padded]
    assert set(kept.unique().tolist()) <= set(values.unique().tolist())  # nearest: only source values
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_training_pipeline_pads_rotated_images_with_the_mean_colour():
    white = MetaTensor(torch.full((3, 28, 28), 255.0), meta={"intensity_max": 255.0})
    pipeline = training_transforms("photo", 28, stage=1, seed=5)
    _always(pipeline.transforms[-4:-3])  # the rotation
    out = torch.as_tensor(pipeline({"image": white, "mask": torch.zeros(1, 28, 28)})["image"])
    white_normalised = torch.tensor([(1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)]).view(3, 1, 1)
    is_white = torch.isclose(out, white_normalised.expand_as(out))
    is_mean = out == 0  # the padding: CLIP mean colour, not black
    assert is_mean.any() and is_white.any() and bool((is_white | is_mean).all())


def test_translation_moves_image_and_mask_together():
    image = torch.zeros(3, 20, 20)
    image[:, 8:12, 8:12] = 1.0
    data = {"image": image, "mask": image[:1].clone()}
    shift = _always(geometric_transforms(20)[1:2])[0]
    shift.set_random_state(0)
    out = shift(data)
    moved, mask = torch.as_tensor(out["image"]), torch.as_tensor(out["mask"])
    assert not torch.equal(moved, image)
    torch.testing.assert_close(moved[:1], mask)
    assert int(mask.sum()) == 16  # an integer shift of a square inside the frame


def test_training_order_is_the_published_one():
    steps = training_transforms("photo", 28, stage=2).transforms
    names = [type(t).__name__ for t in steps]
    assert names == ["ScaleToUnitd", "ToThreeChannelsd", "RandColorJitterd", "ResizeImaged", "ResizeMaskd",
                     "ClipNormalized", "RandRotated", "RandAffined", "RandFlipd", "RandFlipd"]
    assert "RandColorJitterd" not in [type(t).__name__ for t in training_transforms("photo", 28, stage=1).transforms]


def test_jitter_keeps_meta():
    img = MetaTensor(torch.rand(3, 6, 6), meta={"intensity_max": 255.0})
    out = RandColorJitterd("image", prob=1.0).set_random_state(1)({"image": img})["image"]
    assert out.meta["intensity_max"] == 255.0 and not torch.equal(out.as_tensor(), img.as_tensor())
