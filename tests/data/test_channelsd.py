import torch

from aaclip_med.data.channels import BinarizeMaskd, ClipNormalized, ToThreeChannelsd


def test_dictionary_twins():
    d = {"image": torch.rand(1, 4, 4), "mask": torch.tensor([[[0.0, 2.0]]])}
    d = ToThreeChannelsd("image")(d)
    d = ClipNormalized("image")(d)
    d = BinarizeMaskd("mask")(d)
    assert d["image"].shape == (3, 4, 4) and d["mask"].tolist() == [[[0.0, 1.0]]]
