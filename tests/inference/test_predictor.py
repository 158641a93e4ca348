"""The batched predictor: batching does not change results, maps come back at native size, autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from aaclip_med.inference import Predictor, predict_volume


def _slices(count=3):
    gen = torch.Generator().manual_seed(0)
    return [MetaTensor(torch.rand(1, 20 + k, 17, generator=gen) * 100) for k in range(count)]


def test_batching_and_native_size(tiny_model):
    slices = _slices()
    one = Predictor(tiny_model, modality="mr", batch_size=1, device="cpu").predict_slices(slices, "scan")
    many = Predictor(tiny_model, modality="mr", batch_size=3, device="cpu").predict_slices(slices, "scan")
    assert [m.shape for m in one.maps] == [(20, 17), (21, 17), (22, 17)]
    assert all(m.dtype == np.float32 for m in one.maps)
    np.testing.assert_allclose(one.image_score, many.image_score, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(one.maps[1], many.maps[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(one.image_score, one.map_max)  # medical: score = max(map)


def test_bf16_autocast_close_to_fp32(tiny_model):
    slices = _slices(2)
    fp32 = Predictor(tiny_model, modality="mr", device="cpu").predict_slices(slices, "scan")
    bf16 = Predictor(tiny_model, modality="mr", precision="bf16", device="cpu").predict_slices(slices, "scan")
    assert bf16.maps[0].dtype == np.float32
    scale = np.abs(fp32.maps[0]).max()
    assert np.abs(bf16.maps[0] - fp32.maps[0]).max() < 0.1 * scale


def test_unknown_modality_lists_the_presets(tiny_model):
    with pytest.raises(ValueError, match="mri"):
        Predictor(tiny_model, modality="xray")


def test_predict_volume_returns_map_on_source_grid(tiny_model):
    affine = torch.tensor([[0.0, 0.8, 0, 3], [-0.9, 0, 0, 4], [0, 0, 2.5, 5], [0, 0, 0, 1]], dtype=torch.float64)
    volume = MetaTensor(torch.rand(1, 18, 16, 3) * 100, affine=affine)
    out = predict_volume(tiny_model, volume, "scan", modality="ct", device="cpu")
    assert out.shape == (1, 18, 16, 3)
    torch.testing.assert_close(out.affine, affine)
    assert len(out.meta["slice_scores"]) == 3
    assert out.meta["case_score"] == max(s["image_score"] for s in out.meta["slice_scores"])


def test_input_size_must_be_whole_patches():
    from tests.conftest import make_tiny_model

    message = "image size 30 is not a multiple of the patch size 14 of aaclip-tiny; use 28 or 42"
    with pytest.raises(ValueError, match=message):  # patch 14: 2 patches and 2 pixels left over
        make_tiny_model(image_size=30)  # refused when the config is resolved, before anything is built
    model = make_tiny_model(image_size=28)
    model.config.image_size = 30  # a network whose config was changed after it was built
    with pytest.raises(ValueError, match=message):
        Predictor(model, device="cpu")


def test_auto_predictor_decides_per_call(tiny_model):
    hu = MetaTensor(torch.full((1, 20, 17), -1000.0))
    hu[0, 5:15, 4:12] = 40.0
    auto = Predictor(tiny_model, device="cpu").predict_slices([hu], "scan")
    ct = Predictor(tiny_model, modality="ct", device="cpu").predict_slices([hu], "scan")
    np.testing.assert_allclose(auto.maps[0], ct.maps[0], rtol=1e-5, atol=1e-5)  # air in HU: the ct preset


def test_images_below_the_patch_size_are_announced(tiny_model, caplog):
    """A 2 x 2 or 1 x 500 image is blown up to the model's input: its map says little, so say so."""
    predictor = Predictor(tiny_model, modality="photo", device="cpu")
    tiny = MetaTensor(torch.rand(3, 2, 2), meta={"filename_or_obj": "tiny.png"})
    strip = MetaTensor(torch.rand(3, 1, 500), meta={"filename_or_obj": "strip.png"})
    normal = MetaTensor(torch.rand(3, 20, 30), meta={"filename_or_obj": "fine.png"})
    out = predictor.predict_slices([tiny, strip, normal], "object")
    assert [m.shape for m in out.maps] == [(2, 2), (1, 500), (20, 30)]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("tiny.png: 2 x 2 px is below the patch size of 14 px" in w for w in warnings), warnings
    assert any("strip.png: 1 x 500 px is below the patch size of 14 px" in w for w in warnings), warnings
    assert not any("fine.png" in w for w in warnings)
