"""Training preprocessing follows each manifest record's own modality."""

import torch
from monai.data import MetaTensor

from aaclip_med.data.dispatch import ModalityDispatch
from aaclip_med.data.pipeline import training_transforms


def test_records_use_their_own_modality_and_default_otherwise():
    built = []

    def build(name):
        built.append(name)
        return lambda d: {**d, "preset": name}

    dispatch = ModalityDispatch(build, default="photo")
    assert dispatch({"modality": "ct"})["preset"] == "ct"
    assert dispatch({})["preset"] == "photo"
    assert dispatch({"modality": "ct"})["preset"] == "ct"
    assert built == ["ct", "photo"]  # one pipeline per modality, built once


def _sample(values):
    image = MetaTensor(torch.tensor(values, dtype=torch.float32).reshape(1, 4, 4))
    return {"image": image, "mask": MetaTensor(torch.zeros(1, 4, 4))}


def test_ct_window_applies_to_ct_records_only_and_seeding_reaches_the_pipeline():
    dispatch = ModalityDispatch(lambda name: training_transforms(name, 16, stage=1, seed=0), default="photo")
    hu = [-1000.0, 40.0, 240.0, 1000.0] * 4  # air, soft tissue, upper edge of the abdomen window, bone
    outputs = []
    for _ in range(2):
        dispatch.set_random_state(seed=7)
        outputs.append(dispatch({**_sample(hu), "modality": "ct"})["image"])
    torch.testing.assert_close(outputs[0], outputs[1])  # same seed, same augmentation
    ct = outputs[0]
    dispatch.set_random_state(seed=7)
    photo = dispatch(_sample(hu))["image"]  # photo preset: scaled by its own range, not an HU window
    assert ct.shape == photo.shape == (3, 16, 16)
    assert not torch.allclose(ct, photo)
