"""Scratch, hole, colour spot: exact masks in uint8 and in float units, what rounding cannot change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aaclip_med.anomalies import RandColorSpot, RandHole, RandScratch
from aaclip_med.anomalies.shapes import smooth_noise
from tests.anomalies._images import changed, ct_slice, photo

GENERATORS = [RandScratch, RandHole, RandColorSpot]


def _texture(background: str) -> np.ndarray:
    gray = {
        "texture": (smooth_noise((96, 96), np.random.default_rng(3)) * 255).astype(np.uint8),
        "black": np.zeros((96, 96), np.uint8),  # a dark scratch or hole cannot darken black
        "white": np.full((96, 96), 255, np.uint8),
    }[background]
    return np.repeat(gray[None], 3, axis=0)  # (3, H, W)


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.__name__)
@pytest.mark.parametrize("background", ["texture", "black", "white"])
def test_uint8_mask_is_the_changed_set_after_rounding(generator, background):
    image = _texture(background)
    planted = generator().plant_array(image, np.random.default_rng(7))
    assert planted.image.dtype == np.uint8 and planted.image.shape == image.shape
    np.testing.assert_array_equal((planted.image != image).any(axis=0), planted.mask[0])
    if background == "texture":
        assert planted.mask.any()


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.__name__)
@pytest.mark.parametrize("make", [ct_slice, photo])
def test_float_images_in_their_units(generator, make):
    image = make(size=96, seed=1)
    result = generator().set_random_state(2)(image)
    assert result.mask.any()
    torch.testing.assert_close(changed(image, result.image), result.mask[0].bool(), rtol=0, atol=0)
    lo, hi = np.percentile(image.numpy(), [1, 99])
    inside = result.image[:, result.mask[0].bool()]
    assert inside.min() >= image.min() - 1e-3 and inside.max() <= max(hi, float(image.max())) + 1e-3  # no 0-255 shades in HU


def test_hole_darkens_and_spot_sizes_follow_the_shorter_side():
    image = _texture("texture")
    hole = RandHole().plant_array(image, np.random.default_rng(1))
    region = hole.mask[0]
    assert (hole.image[:, region].astype(int) <= image[:, region]).all()
    areas = [RandColorSpot().plant_array(image, np.random.default_rng(s)).mask.mean() for s in range(20)]
    # radius 7-12 % of the side: an ellipse of pi r1 r2 is 1-7 % of the image, the blob's border rougher
    assert 0.005 < min(areas) and max(areas) < 0.12
