"""Fixtures of the inference tests: a fake network whose map is the input intensity, and small sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from aaclip_med.data.synthetic import write_nifti
from aaclip_med.model import Prediction


class IntensityModel(nn.Module):
    """Stands in for AAClip: map = first channel of the preprocessed image, so its maximum lies where
    the source is brightest. Counts ``predict`` calls (images seen) to check resume."""

    def __init__(self, image_size: int = 32) -> None:
        super().__init__()
        self.config = type("Config", (), {"image_size": image_size, "backbone": "fake", "pretrained": "random"})()
        self.scale = nn.Parameter(torch.ones(()), requires_grad=False)
        self.images_seen = 0

    def text_anchors(self, description: str) -> torch.Tensor:
        return torch.zeros(4, 2)

    def predict(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        self.images_seen += images.shape[0]
        amap = images[:, 0].float() * self.scale  # (B, S, S)
        peak = amap.flatten(1).amax(1)
        return Prediction(amap, peak, torch.sigmoid(images.mean((1, 2, 3))), peak)


@pytest.fixture
def fake_model():
    return IntensityModel()


def blob_volume(shape=(20, 18, 5), center=(12, 7, 3), sigma=1.5, peak=200.0) -> np.ndarray:
    """(X, Y, Z) HU volume: 0 HU everywhere and a Gaussian blob in slice ``center[2]`` only."""
    grid = np.meshgrid(*[np.arange(n) for n in shape[:2]], indexing="ij")
    d2 = sum((g - c) ** 2 for g, c in zip(grid, center[:2]))
    volume = np.zeros(shape, np.float32)
    volume[..., center[2]] = peak * np.exp(-d2 / (2 * sigma**2))
    return volume


@pytest.fixture
def nifti_cases(tmp_path):
    """A folder of three small NIfTI volumes with oblique affines, blobs at different places."""
    folder = tmp_path / "cases"
    for n, center in enumerate([(5, 5, 1), (12, 7, 3), (15, 12, 2)]):
        write_nifti(folder / f"case{n}.nii.gz", blob_volume(center=center))
    return folder
