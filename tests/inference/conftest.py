"""Fixtures of the inference tests: a fake network whose map is the input intensity, and small sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aaclip_med.model import AAClip, ImageFeatures, Prediction
from tests._synthetic import write_nifti
from tests.conftest import make_tiny_model


class IntensityModel(AAClip):
    """A real :class:`AAClip` (tiny random CLIP) whose map is the first channel of the preprocessed
    image, so its maximum lies where the source is brightest. Counts the images it predicted
    (``images_seen``) to check resume. It goes through the same Predictor and fast path as any
    AAClip: only the image-side quantities are replaced.
    """

    def __init__(self, image_size: int = 28) -> None:
        tiny = make_tiny_model(seed=0, image_size=image_size)
        super().__init__(tiny.clip, tiny.config, tiny.prompts)
        self.images_seen = 0

    def _vision_tokens(self, images: torch.Tensor, block_forward=None) -> list[torch.Tensor]:
        self.images_seen += images.shape[0]
        return [images.float()]

    def features_from_tokens(self, taps: list[torch.Tensor]) -> ImageFeatures:
        images = taps[0]
        return ImageFeatures(levels=[images[:, 0]], global_feature=torch.sigmoid(images.mean((1, 2, 3)))[:, None])

    def predict_from_features(self, feats: ImageFeatures, anchors, domain: str, size, sum_first=False) -> Prediction:
        amap = feats.levels[0]  # (B, S, S)
        peak = amap.flatten(1).amax(1)
        return Prediction(amap, peak, feats.global_feature[:, 0], peak)


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
