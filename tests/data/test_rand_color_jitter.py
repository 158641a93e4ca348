import pytest
import torch

from aaclip_med.data.augment import RandColorJitter


def test_seeded_and_bounded():
    img = torch.rand(3, 8, 8)
    a = RandColorJitter().set_random_state(5)(img)
    b = RandColorJitter().set_random_state(5)(img)
    torch.testing.assert_close(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_probability_per_adjustment():
    jitter = RandColorJitter(prob=0.7).set_random_state(0)
    applied = []
    for _ in range(400):
        jitter.randomize()
        applied.append("brightness" in jitter.factors)
    assert 0.6 < sum(applied) / 400 < 0.8
    jitter = RandColorJitter(prob=0.0)
    img = torch.rand(3, 4, 4)
    torch.testing.assert_close(jitter(img), img)
    with pytest.raises(ValueError, match="prob"):
        RandColorJitter(prob=2)


def test_values_are_torchvision_adjustments_in_published_order():
    from torchvision.transforms.v2 import functional as tvf

    img = torch.rand(3, 8, 8)
    jitter = RandColorJitter(prob=1.0).set_random_state(11)
    jitter.randomize()
    factors = dict(jitter.factors)
    assert list(factors) == ["brightness", "contrast", "saturation"]
    assert all(0.5 <= f <= 1.5 for f in factors.values())  # strength 0.5: factor in [1 - 0.5, 1 + 0.5]
    expected = tvf.adjust_saturation(
        tvf.adjust_contrast(tvf.adjust_brightness(img, factors["brightness"]), factors["contrast"]), factors["saturation"])
    torch.testing.assert_close(jitter(img, randomize=False), expected, rtol=0, atol=0)
