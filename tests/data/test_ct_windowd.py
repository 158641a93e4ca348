import torch
from monai.data import MetaTensor

from aaclip_med.data.intensity import CTWindowd


def test_keeps_meta_and_other_keys():
    img = MetaTensor(torch.tensor([[[-1000.0, 40.0]]]), affine=torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0])))
    out = CTWindowd("image", window="brain")({"image": img, "label": 1.0})
    torch.testing.assert_close(out["image"].as_tensor(), torch.tensor([[[0.0, 0.5]]]))
    assert float(out["image"].affine[0, 0]) == 2.0 and out["label"] == 1.0
