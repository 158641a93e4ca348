import torch
from monai.data import MetaTensor

from aaclip_med.data.intensity import MRINormalized


def test_dictionary_twin():
    img = MetaTensor(torch.arange(16.0).reshape(1, 4, 4), meta={"case_id": "c1"})
    out = MRINormalized("image", lower=0, upper=100)({"image": img})["image"]
    assert float(out.max()) == 1.0 and out.meta["case_id"] == "c1"
