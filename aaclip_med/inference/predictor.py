"""Batched AA-CLIP prediction on 2D slices, with maps returned at each slice's native size.

The predictor owns everything between a loaded slice and its raw outputs: the modality preset and
CLIP preprocessing (:func:`aaclip_med.data.pipeline.inference_transforms`), text anchors cached
per class description, batching, ``torch.inference_mode`` and optional autocast. Scores are the
raw values of spec section 5 computed at the model's input size S; the S x S map is then resized
(bilinear) to the slice's own (H, W), because preprocessing resized the whole slice to S x S.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aaclip_med.data.modality import get_modality, resolve_modality_name
from aaclip_med.data.pipeline import inference_transforms
from aaclip_med.keys import Domain, Keys
from aaclip_med.model import Prediction
from aaclip_med.model.fast import FastPredictor

__all__ = ["Predictor", "SlicePredictions", "default_domain", "resize_map"]

logger = logging.getLogger(__name__)

def default_domain(modality: str) -> str:
    """The domain a modality implies: photo -> industrial, every medical modality -> medical."""
    return str(get_modality(resolve_modality_name(modality)).get("domain", Domain.MEDICAL))


class SlicePredictions(NamedTuple):
    """Outputs for N slices (raw values, spec section 5)."""

    maps: list[np.ndarray]  # per slice (H, W) float32, at the slice's native size
    image_score: np.ndarray  # (N,) deployment score (medical: max(map); industrial: mix with s_g)
    global_score: np.ndarray  # (N,) s_g
    map_max: np.ndarray  # (N,) max of the S x S map


def resize_map(score_map: torch.Tensor, size: Sequence[int]) -> np.ndarray:
    """Resize an (S, S) map to ``size`` (H, W) with bilinear interpolation; float32 numpy out."""
    size = tuple(int(s) for s in size)
    if tuple(score_map.shape) == size:
        return score_map.float().cpu().numpy()
    shrink = size[0] < score_map.shape[0] or size[1] < score_map.shape[1]
    out = F.interpolate(score_map[None, None].float(), size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return out[0, 0].cpu().numpy()


class Predictor:
    """Runs an AA-CLIP network on 2D slices in batches.

    Args:
        model: an :class:`aaclip_med.model.AAClip`.
        modality: modality preset ("ct", "mr"/"mri", "oct", "endoscopy", "photo", "ct-lung", ...).
        domain: "medical" or "industrial"; default from the modality.
        batch_size: slices per forward pass.
        precision: "auto", "fp32", "bf16" or "fp16" (see :mod:`aaclip_med.precision`).
        device: torch device; default cuda when available, else cpu.
    """

    def __init__(
        self,
        model: nn.Module,
        modality: str = "photo",
        domain: str | None = None,
        batch_size: int = 8,
        precision: str = "fp32",
        device: str | torch.device | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.modality = resolve_modality_name(modality)
        self.domain = str(Domain(domain)) if domain else default_domain(self.modality)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        self.model = model.to(self.device).eval()
        self.image_size = int(model.config.image_size)
        self._transforms = {self.modality: inference_transforms(self.modality, self.image_size)}
        self._anchors: dict[str, torch.Tensor] = {}
        # fused attention, autocast blocks with fp32 heads (the reference is AAClip.predict in fp32)
        self._fast = FastPredictor(model, precision=precision)
        self.precision = self._fast.precision  # resolved: what actually runs
        logger.info("predictor: modality %s, domain %s, %s on %s, batch %d",
                    self.modality, self.domain, self.precision, self.device, batch_size)

    def anchors(self, description: str) -> torch.Tensor:
        """(D, 2) text anchors of ``description``, computed once in fp32 and kept on the device."""
        if description not in self._anchors:
            with torch.inference_mode():
                self._anchors[description] = self.model.text_anchors(description).float().to(self.device)
        return self._anchors[description]

    def preprocess(self, image: torch.Tensor, modality: str | None = None) -> torch.Tensor:
        """(C, H, W) loaded slice -> (3, S, S) CLIP-normalised tensor (preset ``modality`` or the predictor's)."""
        name = resolve_modality_name(modality) if modality else self.modality
        if name not in self._transforms:
            self._transforms[name] = inference_transforms(name, self.image_size)
        out = self._transforms[name]({Keys.IMAGE: image})[Keys.IMAGE]
        return torch.as_tensor(out).float()

    def predict_tensor(self, images: torch.Tensor, description: str, domain: str | None = None) -> Prediction:
        """Raw prediction for preprocessed ``images`` (B, 3, S, S); every field float32 on CPU."""
        anchors = self.anchors(description)
        domain = str(Domain(domain or self.domain))
        pred = self._fast(images.to(self.device), anchors, domain)
        return Prediction(*(t.detach().float().cpu() for t in pred))

    def predict_slices(
        self, slices: Sequence[torch.Tensor], description: str, modality: str | None = None, domain: str | None = None
    ) -> SlicePredictions:
        """Predict N loaded slices (C, H, W) and resize each map back to its (H, W).

        Args:
            slices: loaded slices, any sizes.
            description: class description for the anchors.
            modality: preset overriding the predictor's (e.g. from a manifest line).
            domain: domain overriding the predictor's.

        Returns:
            :class:`SlicePredictions` in the order of ``slices``.
        """
        maps, scores, globals_, maxima = [], [], [], []
        for start in range(0, len(slices), self.batch_size):
            chunk = slices[start : start + self.batch_size]
            batch = torch.stack([self.preprocess(s, modality) for s in chunk])  # (B, 3, S, S)
            pred = self.predict_tensor(batch, description, domain)
            maps += [resize_map(m, s.shape[-2:]) for m, s in zip(pred.anomaly_map, chunk, strict=True)]
            scores.append(pred.image_score)
            globals_.append(pred.global_score)
            maxima.append(pred.map_max)

        def cat(parts: list[torch.Tensor]) -> np.ndarray:
            return torch.cat(parts).numpy() if parts else np.zeros(0, np.float32)

        return SlicePredictions(maps, cat(scores), cat(globals_), cat(maxima))
