"""Lesions: exact masks, inside the body only, offsets in the modality's units before the window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aaclip_med.anomalies import RandLesion, RandLesiond, RandSyntheticAnomalyd, foreground_mask, plant_lesion
from aaclip_med.data.intensity import CTWindowd
from aaclip_med.data.pipeline import training_transforms
from tests.anomalies._images import changed, ct_slice, photo


@pytest.mark.parametrize("modality", ["ct", "auto"])
def test_ct_lesion_is_exact_inside_the_body_and_in_hounsfield_units(modality):
    image = ct_slice(seed=0)
    body = image[0] > -500
    transform = RandLesion(modality)
    for seed in range(10):
        result = transform.set_random_state(seed)(image)
        mask = result.mask[0].bool()
        assert mask.any()
        torch.testing.assert_close(changed(image, result.image), mask, rtol=0, atol=0)
        assert not (mask & ~body).any()  # never in the air around the body
        core = (result.image - image)[0][mask].abs().max()
        assert 60 * 0.3 <= core <= 200 * 1.5  # HU: 60-200 at the core, >= 30 % of it at the border
        assert result.image[0][mask].min() > -600  # stays tissue: the window comes later


def test_mr_lesion_offset_is_relative_to_the_foreground_range():
    rng = np.random.default_rng(0)
    volume = np.zeros((1, 64, 64))
    volume[0, 12:52, 12:52] = 800 + 50 * rng.standard_normal((40, 40))  # arbitrary MR units, dark background
    image = torch.tensor(volume, dtype=torch.float32)
    result = RandLesion("mri").set_random_state(3)(image)
    mask = result.mask[0].bool()
    assert mask.any() and not (mask & (image[0] == 0)).any()
    lo, hi = np.percentile(volume[0, 12:52, 12:52], [1, 99])
    core = float((result.image - image)[0][mask].abs().max())
    assert 0.25 * 0.3 * (hi - lo) <= core <= 0.6 * 1.5 * (hi - lo)


def test_foreground_of_photos_is_the_frame_and_empty_ct_gets_no_lesion():
    frame = foreground_mask(photo().numpy().astype(float), "photo")  # the whole frame less a 2-pixel margin
    assert frame[2:-2, 2:-2].all() and not frame[:2].any() and not frame[:, -2:].any()
    air = torch.full((1, 32, 32), -1000.0)
    result = RandLesion("ct").set_random_state(0)(air)
    assert not result.mask.any() and torch.equal(result.image, air)


def test_training_pipeline_plants_before_the_window():
    steps = training_transforms("ct", 112, stage=1, synthetic_kinds="lesion", synthetic_probability=1.0).transforms
    assert isinstance(steps[0], RandSyntheticAnomalyd)
    assert any(isinstance(step, CTWindowd) for step in steps[1:])
    # planted in HU, then windowed: the lesion is visible on the [0, 1] image
    sample = {"image": ct_slice(seed=2), "mask": torch.zeros(1, 64, 64), "label": 0.0}
    planted = steps[0].set_random_state(1)(sample)
    windowed = CTWindowd("image", "abdomen")
    before, after = windowed({"image": ct_slice(seed=2)})["image"], windowed(planted)["image"]
    assert planted["mask"].any() and changed(before, after).any()


def test_dictionary_twin():
    image = ct_slice(seed=5)
    out = RandLesiond("image", modality="ct").set_random_state(0)({"image": image, "mask": torch.zeros(1, 64, 64),
                                                                    "label": 0.0})
    assert out["label"] == 1.0 and out["mask"].any()
    with pytest.raises(ValueError, match="hu_offset"):
        RandLesion("ct", hu_offset=(0.0, 10.0))


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_volume_lesion_of_the_sample_is_exact_and_keeps_the_dtype(dtype):
    volume = (np.random.default_rng(0).random((1, 40, 30, 6)) * 200 - 100).astype(dtype)
    planted = plant_lesion(volume, np.random.default_rng(1), (20, 15, 3), (6, 5, 1.5), delta=80.0)
    assert planted.image.dtype == dtype and planted.mask.shape == (1, 40, 30, 6)
    assert planted.mask.any() and not planted.mask.all()
    np.testing.assert_array_equal((volume != planted.image).any(axis=0), planted.mask[0])


def test_rgb_lesion_with_one_offset_per_channel_clips_at_the_uint8_range():
    image = np.full((3, 64, 64), 250, np.uint8)  # +60 on red clips at 255, -10 on blue does not
    planted = plant_lesion(image, np.random.default_rng(2), (32, 30), (6, 8), delta=np.array([60.0, 40.0, -10.0]))
    region = planted.mask[0]
    assert region.any() and planted.image[0][region].max() == 255
    assert (planted.image[2][region] < 250).all()
    np.testing.assert_array_equal((image != planted.image).any(axis=0), region)
