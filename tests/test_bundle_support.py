"""AnomalyMapNet, the bundle's network_def: one image tensor in, one map out, at the model's size."""

from __future__ import annotations

import pytest
import torch

from aaclip_med.bundle_support import AnomalyMapNet


def test_map_has_the_input_size_and_one_channel(tiny_model):
    net = AnomalyMapNet(tiny_model, "scan")
    with torch.no_grad():
        out = net(torch.rand(2, 3, 112, 112))
    assert out.shape == (2, 1, 112, 112) and out.dtype == torch.float32


def test_other_input_size_names_the_size_expected(tiny_model):
    """verify_net_in_out feeds the metadata's 518 x 518 to a 112 px model: say which size and how to change it."""
    net = AnomalyMapNet(tiny_model, "scan")
    with pytest.raises(ValueError, match=r"AnomalyMapNet expects \(B, 3, 112, 112\) images \(image_size 112 of "
                                         r"aaclip-tiny\), got \(1, 3, 518, 518\); .*spatial_shape"):
        net(torch.rand(1, 3, 518, 518))
