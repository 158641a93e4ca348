"""A tiny network, textured normal images and a memory built from them (shared by the adaptation tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from aaclip_med.adaptation import ReferenceSlices, build_references
from aaclip_med.identity import memory_identity
from aaclip_med.inference import Predictor
from aaclip_med.inference.run_info import run_record


def normal_slice(seed: int, size: int = 112) -> MetaTensor:
    """(1, H, W) CT 'soft tissue' in HU: 40 HU with fine noise (the same statistics everywhere), different per seed.

    CT keeps a fixed window, so a planted anomaly does not change how the rest of the slice is normalised."""
    rng = np.random.default_rng(seed)
    image = 40.0 + rng.normal(0, 15.0, (size, size))
    return MetaTensor(torch.as_tensor(image[None], dtype=torch.float32))


def with_planted_anomaly(image: MetaTensor, box=(40, 72, 40, 72)) -> MetaTensor:
    """A copy with a foreign texture in ``box`` (rows, cols): 10x the normal noise, unlike any normal patch."""
    out = image.clone()
    r0, r1, c0, c1 = box
    rng = np.random.default_rng(1234)
    out[0, r0:r1, c0:c1] = torch.as_tensor(40.0 + rng.normal(0, 150.0, (r1 - r0, c1 - c0)), dtype=torch.float32)
    return out


def model_identity(model) -> dict:
    return memory_identity(run_record(model, None, {}), "acquisition")


@pytest.fixture(scope="module")
def predictor(tiny_model):
    return Predictor(tiny_model, modality="ct", batch_size=4, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def references():
    return [normal_slice(seed) for seed in range(6)]


@pytest.fixture(scope="module")
def bank(predictor, references):
    sources = [ReferenceSlices(f"ref{n}", [s], "ct") for n, s in enumerate(references)]
    return build_references(predictor, {"scan": ("scan", iter(sources))}, 64.0, model_identity(predictor.model))
