import pytest
import torch
from monai.data import MetaTensor

from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD, BinarizeMask, ClipNormalize, ToThreeChannels


def test_three_channels():
    gray = torch.arange(20.0).reshape(1, 4, 5)
    torch.testing.assert_close(ToThreeChannels()(gray), torch.cat([gray, gray, gray]), rtol=0, atol=0)
    rgba = torch.arange(80.0).reshape(4, 4, 5)
    torch.testing.assert_close(ToThreeChannels()(rgba), rgba[:3], rtol=0, atol=0)  # alpha dropped
    rgb = torch.rand(3, 4, 5)
    assert ToThreeChannels()(rgb) is rgb
    with pytest.raises(ValueError, match="2 "):
        ToThreeChannels()(torch.zeros(2, 4, 5))


def test_clip_normalize_values_and_meta():
    img = MetaTensor(torch.ones(3, 2, 2) * 1.2, meta={"slice_index": 3})  # overshoot is clamped
    out = ClipNormalize()(img)
    for c in range(3):
        assert float(out[c, 0, 0]) == pytest.approx((1 - CLIP_MEAN[c]) / CLIP_STD[c], rel=1e-5)
    assert out.meta["slice_index"] == 3


def test_binarize():
    assert BinarizeMask()(torch.tensor([[[0.0, 255.0, 0.3]]])).tolist() == [[[0.0, 1.0, 1.0]]]
