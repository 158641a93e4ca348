import torch

from aaclip_med.data.intensity import ScaleToUnitd


def test_dictionary_twin():
    out = ScaleToUnitd("image", full_scale=10)({"image": torch.full((3, 2, 2), 5.0)})
    assert float(out["image"].max()) == 0.5
