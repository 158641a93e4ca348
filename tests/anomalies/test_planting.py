"""Each planted anomaly changes exactly the pixels of its mask, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from aaclip_med.anomalies.planting import TEXTURE_DEFECTS, plant_lesion
from aaclip_med.anomalies.shapes import blob_mask, feather, smooth_noise


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    diff = before != after
    return diff.any(axis=-1) if diff.ndim == 3 and before.shape[-1] == 3 else diff


@pytest.mark.parametrize("defect", TEXTURE_DEFECTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("background", ["texture", "black", "white"])
def test_texture_defect_mask_is_changed_set(defect, background):
    rng = np.random.default_rng(3)
    image = {
        "texture": (smooth_noise((96, 96), rng) * 255).astype(np.uint8),
        "black": np.zeros((96, 96), np.uint8),  # a dark scratch or hole cannot darken black
        "white": np.full((96, 96), 255, np.uint8),
    }[background]
    image = np.repeat(image[..., None], 3, axis=-1)
    planted = defect(image, np.random.default_rng(7))
    assert planted.image.dtype == np.uint8 and planted.image.shape == image.shape
    assert planted.mask.any()
    np.testing.assert_array_equal(_changed(image, planted.image), planted.mask)


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_volume_lesion_mask_is_changed_set(dtype):
    volume = (np.random.default_rng(0).random((40, 30, 6)) * 200 - 100).astype(dtype)
    planted = plant_lesion(volume, np.random.default_rng(1), (20, 15, 3), (6, 5, 1.5), delta=80.0)
    assert planted.mask.any() and not planted.mask.all()
    np.testing.assert_array_equal(volume != planted.image, planted.mask)


def test_rgb_lesion_mask_is_changed_set():
    photo = np.full((64, 64, 3), 120, np.uint8)
    planted = plant_lesion(photo, np.random.default_rng(2), (32, 30), (6, 8), delta=np.array([60.0, 40.0, -10.0]))
    np.testing.assert_array_equal(_changed(photo, planted.image), planted.mask)


def test_blob_is_one_piece_and_feather_is_zero_outside():
    from scipy import ndimage

    mask = blob_mask((64, 64), (32, 32), (10, 14), np.random.default_rng(5))
    assert ndimage.label(mask)[1] == 1
    weight = feather(mask, width=3)
    assert (weight[~mask] == 0).all() and (weight[mask] >= 0.4).all()
