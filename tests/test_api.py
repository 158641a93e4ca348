"""The top-level Python API: every promised name is its home module's object, loaded lazily, and
the names together run a volume end to end (build, save, load, load_image, predict_volume)."""

import importlib
import subprocess
import sys

import numpy as np
import torch

import aaclip_med
from tests._synthetic import write_nifti
from tests.conftest import make_tiny_model


def test_every_api_name_is_the_object_of_its_home_module():
    assert set(aaclip_med.__all__) == {"__version__", *aaclip_med._API}
    for name, module in aaclip_med._API.items():
        assert getattr(aaclip_med, name) is getattr(importlib.import_module(module), name), name


def test_import_is_light_and_unknown_names_raise():
    code = "import sys, aaclip_med; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    try:
        aaclip_med.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:  # pragma: no cover - the line above must raise
        raise AssertionError("unknown attribute did not raise")


def test_api_round_trip_on_a_tiny_model_maps_a_volume_on_its_grid(tmp_path):
    trained = make_tiny_model(seed=0).eval()
    weights = aaclip_med.save_adapters(trained, tmp_path / "adapters.safetensors")
    other = make_tiny_model(seed=0).eval()  # the same CLIP, adapters to be replaced by the file's
    with torch.no_grad():
        for param in other.adapter_state_dict().values():
            param.add_(0.5)
    data = np.zeros((32, 24, 3), np.float32)
    data[10:16, 8:14, 1] = 400.0  # a bright blob in the middle slice
    volume = aaclip_med.load_image(write_nifti(tmp_path / "ct.nii.gz", data))
    kwargs = {"description": "scan", "modality": "ct", "domain": "medical", "precision": "fp32", "device": "cpu"}
    before = aaclip_med.predict_volume(other, volume, **kwargs)
    loaded = aaclip_med.load_adapters(weights, model=other)
    out = aaclip_med.predict_volume(loaded, volume, **kwargs)
    reference = aaclip_med.predict_volume(trained, volume, **kwargs)

    assert out.shape == volume.shape == (1, 32, 24, 3) and out.dtype == torch.float32
    np.testing.assert_allclose(np.asarray(out.affine), np.asarray(volume.affine))  # on the source grid
    assert len(out.meta["slice_scores"]) == 3 and out.meta["modality"] == "ct"
    torch.testing.assert_close(out.as_tensor(), reference.as_tensor())  # the file's adapters, not the others'
    assert out.meta["case_score"] == reference.meta["case_score"]
    assert not torch.allclose(before.as_tensor(), reference.as_tensor())
