"""DRAEM Perlin anomalies: exact masks, textures from other images, blend per sample, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aaclip_med.anomalies import RandPerlinAnomaly, RandPerlinAnomalyd
from aaclip_med.anomalies.perlin import perlin_region
from aaclip_med.anomalies.shapes import perlin_noise
from tests.anomalies._images import changed, ct_slice, photo


def test_perlin_noise_is_zero_on_the_lattice_and_fills_minus_one_to_one():
    noise = perlin_noise((64, 64), (4, 4), np.random.default_rng(0))
    np.testing.assert_allclose(noise[::16, ::16], 0.0, atol=1e-12)  # lattice points: 64 / 4 = 16 pixels apart
    peaks = [np.abs(perlin_noise((128, 128), (4, 4), np.random.default_rng(s))).max() for s in range(50)]
    # DRAEM scales the blend of unit gradients (at most 1/sqrt(2)) by sqrt(2): [-1, 1]; unscaled, the
    # median peak of these draws was 0.55, below DRAEM's threshold of 0.5 for many pixels of a map
    assert max(peaks) <= 1.0 and np.median(peaks) > 0.7


@pytest.mark.parametrize("size", [112, 256])
def test_region_sizes_follow_draem_over_200_draws(size):
    fractions = np.array([perlin_region((size, size), np.random.default_rng(s)).mean() for s in range(200)])
    # as documented in perlin_region: mean about 5 % of the image, 10-90 % of draws 2-8 %, 1 in 25 empty.
    # The unscaled noise gave a mean of 0.4 % and a third of the draws empty.
    assert 0.04 < fractions.mean() < 0.065
    assert 0.015 < np.percentile(fractions, 10) and np.percentile(fractions, 90) < 0.09
    assert (fractions == 0).mean() < 0.08
    patch = 1 / 8**2  # one 14-pixel patch of a 112-pixel image
    assert np.median(fractions) > 2 * patch  # larger than a patch of the network's grid


@pytest.mark.parametrize("make", [ct_slice, photo])
def test_mask_is_exactly_the_changed_pixels(make):
    image = make(seed=1)
    transform = RandPerlinAnomaly(textures=[make(seed=s) for s in (2, 3)])
    for seed in range(8):
        result = transform.set_random_state(seed)(image)
        assert result.mask.shape == (1, *image.shape[1:]) and result.mask.any()
        torch.testing.assert_close(changed(image, result.image), result.mask[0].bool(), rtol=0, atol=0)


def test_texture_comes_from_another_image_mapped_to_this_images_units():
    image = ct_slice(seed=1)
    flat_texture = torch.full((3, 32, 32), 200.0)  # a colour photo of another size, one flat value
    flat_texture[:, :16] = 0.0  # two values so the range is defined
    transform = RandPerlinAnomaly(textures=[flat_texture], blend_range=(0.0, 0.0))  # beta 0: texture only
    result = transform.set_random_state(0)(image)
    inside = result.image[0][result.mask[0].bool()]
    lo, hi = np.percentile(image.numpy(), [1, 99])
    assert inside.min() >= lo - 1e-3 and inside.max() <= hi + 1e-3  # HU range of the CT, not 0-200
    assert result.image.shape == image.shape


def test_a_texture_of_the_same_kind_is_augmented_into_a_foreign_one():
    # issue 34: a region filled with another image of the same kind, as it is, holds the same pixel
    # statistics as the image (a linear probe on the tiny network's patches scored 0.49 on bricks);
    # DRAEM's three texture operations make the region differ from its surroundings
    from scipy.stats import ks_2samp

    image, other = photo(seed=1), photo(seed=2)  # two draws of one kind of texture
    distances = {}
    for augment in (False, True):
        transform = RandPerlinAnomaly(textures=[other], blend_range=(0.0, 0.0), augment=augment)
        per_seed = []
        for seed in range(12):
            result = transform.set_random_state(seed)(image)
            inside = result.mask[0].bool()
            per_seed.append(ks_2samp(result.image[:, inside].flatten().numpy(), image.flatten().numpy()).statistic)
            assert (len(transform.operations) == 3) == augment
        distances[augment] = np.median(per_seed)
    assert distances[False] < 0.05 and distances[True] > 3 * distances[False]


def test_blend_factor_is_drawn_per_sample_in_drams_range():
    image = photo(seed=1)
    texture = image.flip(-1)  # same values, so the texture keeps its values when mapped to the image's range
    lo, hi = np.percentile(image.numpy(), [1, 99])
    transform = RandPerlinAnomaly(textures=[texture], augment=False)  # the texture's own values
    betas = []
    for seed in range(5):
        result = transform.set_random_state(seed)(image)
        m = result.mask[0].bool() & (texture > lo).all(0) & (texture < hi).all(0)
        m &= ((image - texture).abs() > 20).all(0)
        # inside: out = (1 - beta) T + beta I  ->  beta = (out - T) / (I - T), one value per sample
        beta = ((result.image - texture) / (image - texture))[:, m]
        assert beta.numel() > 0 and float(beta.std()) < 1e-3
        betas.append(float(beta.mean()))
    assert all(0.0 <= b <= 0.8 for b in betas) and len({round(b, 4) for b in betas}) == 5


def test_same_seed_same_anomaly_and_dictionary_twin_writes_mask_and_label():
    image = photo(seed=4)
    a = RandPerlinAnomalyd("image").set_random_state(5)({"image": image, "mask": torch.zeros(1, 64, 64), "label": 0.0})
    b = RandPerlinAnomalyd("image").set_random_state(5)({"image": image, "mask": torch.zeros(1, 64, 64), "label": 0.0})
    torch.testing.assert_close(a["image"], b["image"])
    assert a["label"] == 1.0 and a["mask"].any()
    torch.testing.assert_close(changed(image, a["image"]), a["mask"][0].bool(), rtol=0, atol=0)
    c = RandPerlinAnomalyd("image").set_random_state(6)({"image": image, "mask": torch.zeros(1, 64, 64), "label": 0.0})
    assert not torch.equal(a["mask"], c["mask"])


def test_real_anomalies_pass_through_and_prob_zero_plants_nothing():
    image, mask = photo(seed=4), torch.zeros(1, 64, 64)
    mask[:, 5:9, 5:9] = 1
    real = RandPerlinAnomalyd("image").set_random_state(0)({"image": image, "mask": mask, "label": 1.0})
    assert torch.equal(real["image"], image) and torch.equal(real["mask"], mask)
    none = RandPerlinAnomalyd("image", prob=0.0)({"image": image, "mask": torch.zeros(1, 64, 64), "label": 0.0})
    assert torch.equal(none["image"], image) and none["label"] == 0.0


def test_bad_blend_range_is_refused():
    with pytest.raises(ValueError, match="blend_range"):
        RandPerlinAnomaly(blend_range=(0.5, 1.0))
