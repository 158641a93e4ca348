import torch

from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD, BinarizeMaskd, ClipNormalized, ToThreeChannelsd


def test_dictionary_twins():
    gray = torch.rand(1, 4, 4)
    d = {"image": gray.clone(), "mask": torch.tensor([[[0.0, 2.0]]])}
    d = ToThreeChannelsd("image")(d)
    for c in range(3):
        torch.testing.assert_close(d["image"][c], gray[0], rtol=0, atol=0)
    d = ClipNormalized("image")(d)
    d = BinarizeMaskd("mask")(d)
    for c in range(3):  # (x - mean_c) / std_c with the OpenAI CLIP statistics
        torch.testing.assert_close(d["image"][c], (gray[0] - CLIP_MEAN[c]) / CLIP_STD[c])
    assert d["mask"].tolist() == [[[0.0, 1.0]]]
    assert CLIP_MEAN == (0.48145466, 0.4578275, 0.40821073) and CLIP_STD == (0.26862954, 0.26130258, 0.27577711)
