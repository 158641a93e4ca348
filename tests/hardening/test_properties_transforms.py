"""Property-based checks of the data transforms (hypothesis): shapes, value ranges, meta kept,
masks stay binary, slicing round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.data import MetaTensor

from aaclip_med.data import (
    BinarizeMask,
    ClipNormalize,
    CTWindow,
    MRINormalize,
    ScaleToUnit,
    SliceVolume,
    ToThreeChannels,
    inference_transforms,
    restack_slices,
    training_transforms,
)
from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD

FAST = settings(max_examples=25, deadline=None)
sides = st.integers(1, 12)
seeds = st.integers(0, 2**16)


def _image(channels, height, width, seed, low=-2000.0, high=3000.0, affine=None):
    data = torch.as_tensor(np.random.default_rng(seed).uniform(low, high, (channels, height, width)), dtype=torch.float32)
    meta = {"affine": torch.as_tensor(np.eye(4) if affine is None else affine), "filename_or_obj": "case7.png"}
    return MetaTensor(data, meta=meta)


@FAST
@given(st.sampled_from([1, 3, 4]), sides, sides, seeds)
def test_three_channels_shape(channels, height, width, seed):
    out = ToThreeChannels()(_image(channels, height, width, seed))
    assert out.shape == (3, height, width)


@FAST
@given(st.sampled_from([1, 3]), sides, sides, seeds, st.sampled_from(["ct", "mri", "photo", "oct", "ct-lung"]))
def test_presets_map_into_unit_range(channels, height, width, seed, kind):
    image = _image(channels, height, width, seed, low=0.0 if kind in ("photo", "oct") else -2000.0)
    transform = {"ct": CTWindow("abdomen"), "ct-lung": CTWindow("lung"), "mri": MRINormalize(),
                 "photo": ScaleToUnit(), "oct": ScaleToUnit()}[kind]
    out = transform(image)
    assert out.shape == image.shape
    assert torch.isfinite(out).all() and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@FAST
@given(sides, sides, seeds)
def test_clip_normalize_range(height, width, seed):
    out = ClipNormalize()(_image(3, height, width, seed, low=-0.5, high=1.5))
    for c in range(3):
        low, high = (0 - CLIP_MEAN[c]) / CLIP_STD[c], (1 - CLIP_MEAN[c]) / CLIP_STD[c]
        assert low - 1e-5 <= float(out[c].min()) and float(out[c].max()) <= high + 1e-5


@FAST
@given(sides, sides, seeds)
def test_binarize_mask_is_binary(height, width, seed):
    mask = _image(1, height, width, seed, low=-3, high=3).round()
    out = BinarizeMask()(mask)
    assert set(torch.unique(out).tolist()) <= {0.0, 1.0}
    assert torch.equal(out.bool(), mask != 0)


@FAST
@given(sides, sides, seeds, st.sampled_from(["ct", "mri", "photo"]), st.integers(4, 24))
def test_inference_pipeline_shape_and_meta(height, width, seed, modality, size):
    image = _image(1, height, width, seed, low=0.0 if modality == "photo" else -1000.0)
    mask = MetaTensor((torch.rand(1, height, width) > 0.5).float() * 255, meta=dict(image.meta))
    out = inference_transforms(modality, size, mask_key="mask")({"image": image, "mask": mask})
    assert out["image"].shape == (3, size, size) and torch.isfinite(out["image"]).all()
    assert out["image"].meta["filename_or_obj"] == "case7.png"  # meta kept through every step
    assert set(torch.unique(out["mask"]).tolist()) <= {0.0, 1.0}


@FAST
@given(sides, sides, seeds, st.sampled_from([1, 2]), st.integers(8, 20))
def test_training_pipeline_keeps_mask_binary(height, width, seed, stage, size):
    image = _image(3, height, width, seed, low=0.0, high=255.0)
    mask = MetaTensor((torch.rand(1, height, width, generator=torch.Generator().manual_seed(seed)) > 0.6).float(),
                      meta=dict(image.meta))
    out = training_transforms("photo", size, stage=stage, seed=seed)({"image": image, "mask": mask})
    assert out["image"].shape == (3, size, size) and out["mask"].shape == (1, size, size)
    assert set(torch.unique(out["mask"]).tolist()) <= {0.0, 1.0}
    assert torch.isfinite(out["image"]).all()


@FAST
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.sampled_from([0, 1, 2, "axial", "sagittal"]), seeds)
def test_slice_then_restack_is_identity(x, y, z, axis, seed):
    rng = np.random.default_rng(seed)
    affine = np.diag([*rng.uniform(0.5, 3.0, 3), 1.0])
    affine[:3, 3] = rng.uniform(-50, 50, 3)
    volume = MetaTensor(torch.as_tensor(rng.random((1, x, y, z)), dtype=torch.float32),
                        meta={"affine": torch.as_tensor(affine), "filename_or_obj": "vol.nii.gz"})
    slices = SliceVolume(axis=axis)(volume)
    for piece in slices:
        assert piece.ndim == 3 and piece.meta["case_id"] == "vol"
    back = restack_slices([s[0] for s in slices], [s.meta for s in slices])
    assert torch.equal(back.as_tensor(), volume.as_tensor())
    assert np.allclose(np.asarray(back.affine), affine)


@pytest.mark.parametrize("channels", [2, 5])
def test_three_channels_refuses_other_counts(channels):
    with pytest.raises(ValueError, match=f"got {channels}"):
        ToThreeChannels()(torch.zeros(channels, 2, 2))
