import math

import pytest
import torch
from monai.data import MetaTensor

from aaclip_med.data import augment
from aaclip_med.data.augment import RandColorJitterd, colour_transforms, geometric_transforms
from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD
from aaclip_med.data.pipeline import training_transforms


def test_spec_numbers_are_pinned():
    # spec sections 7 and 8: rotation 30 deg, translation 15 %, each geometric step p 0.5,
    # brightness / contrast / saturation 0.5 each applied with p 0.7; the transforms' behaviour
    # with these numbers is measured on pixels below
    assert (augment.ROTATION_DEGREES, augment.TRANSLATION_FRACTION, augment.GEOMETRY_PROB) == (30.0, 0.15, 0.5)
    assert (augment.JITTER_STRENGTH, augment.JITTER_PROB) == (0.5, 0.7)
    (jitter,) = colour_transforms(2)
    assert isinstance(jitter, RandColorJitterd)
    assert jitter.jitter.strengths == {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5}
    assert colour_transforms(1) == []
    with pytest.raises(ValueError, match="stage"):
        colour_transforms(3)


_SIDE, _CENTRE = 41, 20  # odd side: rotations turn about pixel (20, 20)


def _blob(row: int, col: int) -> dict:
    image = torch.zeros(3, _SIDE, _SIDE)
    image[:, row - 1 : row + 2, col - 1 : col + 2] = 1.0
    return {"image": image, "mask": image[:1].clone()}


def _centroid(image) -> tuple[float, float]:
    plane = torch.as_tensor(image)[0]
    rows, cols = torch.meshgrid(torch.arange(_SIDE), torch.arange(_SIDE), indexing="ij")
    total = plane.sum()
    return float((plane * rows).sum() / total), float((plane * cols).sum() / total)


def _changed_fraction(step, data: dict, draws: int = 120) -> float:
    changed = 0
    for seed in range(draws):
        step.set_random_state(seed)
        changed += not torch.equal(torch.as_tensor(step(data)["image"]), data["image"])
    return changed / draws


def test_rotation_turns_by_at_most_30_degrees_about_the_centre():
    rotate = _always(geometric_transforms(_SIDE)[:1])[0]
    data = _blob(_CENTRE, _CENTRE + 16)  # 16 px right of the centre
    angles = []
    for seed in range(60):
        rotate.set_random_state(seed)
        row, col = _centroid(rotate(data)["image"])
        assert math.hypot(row - _CENTRE, col - _CENTRE) == pytest.approx(16, abs=1.0)  # a turn about the centre
        angles.append(abs(math.degrees(math.atan2(row - _CENTRE, col - _CENTRE))))
    assert max(angles) <= 30 + 3 and max(angles) > 24  # up to 30 deg (+ nearest-pixel rounding), and that far


def test_translation_shifts_by_at_most_15_percent_of_the_side():
    shift = _always(geometric_transforms(_SIDE)[1:2])[0]
    data = _blob(_CENTRE, _CENTRE)
    offsets = []
    for seed in range(60):
        shift.set_random_state(seed)
        row, col = _centroid(shift(data)["image"])
        offsets += [abs(row - _CENTRE), abs(col - _CENTRE)]
    limit = 0.15 * _SIDE  # 6.15 px
    assert max(offsets) <= limit + 0.5 and max(offsets) > limit - 1.5


def test_flips_mirror_width_then_height():
    image = torch.arange(3 * 5 * 6, dtype=torch.float32).reshape(3, 5, 6)
    data = {"image": image, "mask": image[:1].clone()}
    hflip, vflip = _always(geometric_transforms(6)[2:])
    torch.testing.assert_close(torch.as_tensor(hflip(data)["image"]), image.flip(2))  # horizontal: along W
    torch.testing.assert_close(torch.as_tensor(vflip(data)["image"]), image.flip(1))  # vertical: along H
    torch.testing.assert_close(torch.as_tensor(hflip(data)["mask"]), image[:1].flip(2))


def test_each_geometric_step_fires_about_half_the_time():
    image = torch.rand(3, _SIDE, _SIDE, generator=torch.Generator().manual_seed(0))
    data = {"image": image, "mask": image[:1].clone()}
    for step in geometric_transforms(_SIDE):  # 120 draws: 0.5 +- 0.046 (one standard deviation)
        assert 0.35 <= _changed_fraction(step, data) <= 0.65, type(step).__name__


def test_jitter_brightness_factor_and_probability():
    # a grey image: contrast and saturation leave it as it is, so only brightness shows
    grey = {"image": torch.full((3, 4, 4), 0.5)}
    (jitter,) = colour_transforms(2)
    factors = []
    for seed in range(200):
        jitter.set_random_state(seed)
        out = torch.as_tensor(jitter(grey)["image"])
        assert torch.allclose(out, out.flatten()[0].expand_as(out))  # still grey
        factors.append(float(out.flatten()[0]) / 0.5)
    moved = [f for f in factors if abs(f - 1.0) > 1e-3]  # contrast/saturation: float rounding only
    assert 0.6 <= len(moved) / len(factors) <= 0.8  # brightness applied with p 0.7
    assert min(moved) >= 0.5 - 1e-6 and max(moved) <= 1.5 + 1e-6  # factor in [1 - 0.5, 1 + 0.5]
    assert min(moved) < 0.6 and max(moved) > 1.4


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
