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
