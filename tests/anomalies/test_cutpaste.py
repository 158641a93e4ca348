"""CutPaste patch and scar: exact masks, sizes of each variant, the dictionary twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aaclip_med.anomalies import RandCutPaste, RandCutPasted
from aaclip_med.anomalies.cutpaste import patch_region
from tests.anomalies._images import changed, ct_slice, photo


@pytest.mark.parametrize("variant", ["patch", "scar"])
@pytest.mark.parametrize("make", [ct_slice, photo])
def test_mask_is_exactly_the_changed_pixels(variant, make):
    image = make(size=128, seed=1)
    transform = RandCutPaste((variant,))
    for seed in range(6):
        result = transform.set_random_state(seed)(image)
        assert result.mask.any()
        torch.testing.assert_close(changed(image, result.image), result.mask[0].bool(), rtol=0, atol=0)


def test_scars_are_thin_and_patches_are_large():
    image = photo(size=256, seed=2)
    areas = {}
    for variant in ("patch", "scar"):
        transform = RandCutPaste((variant,))
        areas[variant] = [float(transform.set_random_state(s)(image).mask.mean()) for s in range(10)]
    assert max(areas["scar"]) < 0.01 < min(areas["patch"]) * 2  # patch: 2-15 % of the image; scar: < 1 %
    assert max(areas["patch"]) <= 0.16


def test_patch_area_and_aspect_follow_cutpaste_over_200_draws():
    shapes = np.array([patch_region(256, 256, np.random.default_rng(s)).shape for s in range(200)], float)
    area, aspect = shapes.prod(axis=1) / 256**2, shapes[:, 0] / shapes[:, 1]
    assert 0.019 <= area.min() and area.max() <= 0.152  # 2-15 % of the image (rounded to whole pixels)
    assert 0.07 < area.mean() < 0.10  # uniform: mean 8.5 %
    assert 0.29 <= aspect.min() and aspect.max() <= 3.4  # (0.3, 1) U (1, 3.3)
    assert 0.4 < (aspect < 1).mean() < 0.6  # each side equally likely


def test_dictionary_twin_and_unknown_variant():
    image = photo(seed=3)
    out = RandCutPasted("image").set_random_state(0)({"image": image, "mask": torch.zeros(1, 64, 64), "label": 0.0})
    assert out["label"] == 1.0
    torch.testing.assert_close(changed(image, out["image"]), out["mask"][0].bool(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="scar"):
        RandCutPaste(("stripe",))
