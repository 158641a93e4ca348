"""Batched AA-CLIP prediction on 2D slices, with maps returned at each slice's native size.

The predictor owns everything between a loaded slice and its raw outputs: the modality preset and
CLIP preprocessing (:func:`aaclip_med.data.pipeline.inference_transforms`), text anchors cached
per class description, batching, ``torch.inference_mode`` and optional autocast. Scores are the
raw values of spec section 5 computed at the model's input size S; the S x S map is then resized
(bilinear) to the slice's own (H, W), because preprocessing resized the whole slice to S x S.

With ``modality="auto"`` (the default) the preset is picked per call from the slices given
(:func:`aaclip_med.data.modality.detect_modality`); cohort runs decide once per source instead,
on the whole volume, and pass the preset.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from aaclip_med.data.modality import ModalityChoice, detect_modality
from aaclip_med.data.pipeline import inference_transforms
from aaclip_med.distributed import check_device
from aaclip_med.inference.network import is_exported
from aaclip_med.keys import Domain, Keys
from aaclip_med.model import ImageFeatures, Prediction
from aaclip_med.model.config import check_image_size, patch_size
from aaclip_med.model.fast import FastPredictor
from aaclip_med.presets import AUTO, default_domain, resolve_modality_name

__all__ = ["Predictor", "SlicePredictions", "resize_map"]

logger = logging.getLogger(__name__)


def _announce_small(slices: Sequence[torch.Tensor], patch: int | None) -> None:
    """Warn once per source whose slices are smaller than one patch: blown up to the model's input,
    such an image has (almost) no detail for the map to show."""
    if not patch:
        return
    seen = set()
    for item in slices:
        height, width = item.shape[-2:]
        source = str(getattr(item, "meta", {}).get("filename_or_obj", "an image"))
        if min(height, width) < patch and source not in seen:
            seen.add(source)
            logger.warning("%s: %d x %d px is below the patch size of %d px; its map and score carry little "
                           "information", source, height, width, patch)


def _auto_choice(slices: Sequence[torch.Tensor]) -> ModalityChoice:
    """What ``auto`` picks for a group of slices: decided on all their values at once."""
    first = slices[0]
    meta = getattr(first, "meta", {})
    if len(slices) > 1 and len({s.shape[0] for s in slices}) == 1:
        values = torch.cat([torch.as_tensor(s).reshape(s.shape[0], -1) for s in slices], dim=1)  # (C, N)
        return detect_modality(values, meta)
    return detect_modality(first, meta)


class SlicePredictions(NamedTuple):
    """Outputs for N slices (raw values, spec section 5)."""

    maps: list[np.ndarray]  # per slice (H, W) float32, at the slice's native size
    image_score: np.ndarray  # (N,) deployment score (medical: max(map); industrial: mix with s_g)
    global_score: np.ndarray  # (N,) s_g
    map_max: np.ndarray  # (N,) max of the S x S map
    model_maps: list[np.ndarray]  # per slice (S, S) float32 at the model's input size (paper protocol); [] unless asked


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
        model: an :class:`aaclip_med.model.AAClip`, or an
            :class:`~aaclip_med.inference.network.ExportedNetwork` (run as it is).
        modality: "auto" (per call, from the slices) or a preset ("ct", "mr"/"mri", "oct",
            "endoscopy", "photo", "ct-lung", ...).
        domain: "medical" or "industrial"; default from the preset.
        batch_size: slices per forward pass.
        precision: "auto", "fp32", "bf16" or "fp16" (see :mod:`aaclip_med.precision`).
        device: torch device; default cuda when available, else cpu.
        progress: a progress bar over the slices of calls with more than one batch (terminal only).
    """

    def __init__(
        self,
        model: nn.Module,
        modality: str = AUTO,
        domain: str | None = None,
        batch_size: int = 8,
        precision: str = "auto",
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        check_image_size(int(model.config.image_size), model.config.backbone)
        self.modality = resolve_modality_name(modality, allow_auto=True)
        self.fixed_domain = str(Domain(domain)) if domain else None
        self.device = check_device(device) or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        self.progress = progress
        self.model = model.to(self.device).eval()
        self.image_size = int(model.config.image_size)
        self._transforms: dict[str, object] = {}
        self._anchors: dict[str, torch.Tensor] = {}
        # (description, preset) -> ReferenceScorer (aaclip_med.memory): maps combined with a reference memory
        self.references: dict[tuple[str, str], object] | None = None
        # fused attention, autocast blocks with fp32 heads (the reference is AAClip.predict in fp32);
        # an exported graph (inference/network.py) runs as it is, with the precision it was exported in
        self._fast = self.model if is_exported(model) else FastPredictor(model, precision=precision)
        self.precision = self._fast.precision  # resolved: what actually runs
        logger.info("predictor: modality %s, domain %s, %s on %s, batch %d",
                    self.modality, self.fixed_domain or "from the preset", self.precision, self.device, batch_size)

    @property
    def domain(self) -> str | None:
        """The domain of the predictor's own preset (None while the preset is picked per call)."""
        if self.fixed_domain or self.modality == AUTO:
            return self.fixed_domain
        return default_domain(self.modality)

    def domain_for(self, preset: str, domain: str | None = None) -> str:
        """The domain a slice under ``preset`` runs with: ``domain`` if given, else the predictor's
        fixed one, else the preset's own."""
        return str(domain or self.fixed_domain or default_domain(preset))

    def anchors(self, description: str) -> torch.Tensor:
        """(D, 2) text anchors of ``description``, computed once in fp32 and kept on the device."""
        if description not in self._anchors:
            with torch.inference_mode():
                self._anchors[description] = self.model.text_anchors(description).float().to(self.device)
        return self._anchors[description]

    def preprocess(self, image: torch.Tensor, modality: str | None = None) -> torch.Tensor:
        """(C, H, W) loaded slice -> (3, S, S) CLIP-normalised tensor (preset ``modality`` or the predictor's)."""
        name = resolve_modality_name(modality or self.modality, allow_auto=True)
        if name == AUTO:
            name = detect_modality(image).name
        if name not in self._transforms:
            self._transforms[name] = inference_transforms(name, self.image_size)
        out = self._transforms[name]({Keys.IMAGE: image})[Keys.IMAGE]
        return torch.as_tensor(out).float()

    def encode(self, images: torch.Tensor, description: str, domain: str | None = None) -> tuple[ImageFeatures, Prediction]:
        """Patch features (on the device) and the raw zero-shot prediction (float32 on CPU) of ``images``.

        The reference memory is built from these features and scores them (:mod:`aaclip_med.adaptation`).
        """
        anchors = self.anchors(description)
        if not (domain or self.domain):
            raise ValueError("domain unknown: pass domain= ('medical' or 'industrial') or a modality preset")
        domain = str(Domain(domain or self.domain))
        with torch.inference_mode():
            feats = self._fast.encode_image(images.to(self.device))
            size = tuple(images.shape[-2:])
            pred = self.model.predict_from_features(feats, anchors, domain, size, sum_first=True)
        return feats, Prediction(*(t.detach().float().cpu() for t in pred))

    def predict_tensor(self, images: torch.Tensor, description: str, domain: str | None = None,
                       scorer=None) -> Prediction:
        """Raw prediction for preprocessed ``images`` (B, 3, S, S); every field float32 on CPU.

        With a ``scorer`` (a :class:`~aaclip_med.memory.ReferenceScorer`), the map and score
        combine the zero-shot map with its reference memory (:mod:`aaclip_med.memory.scoring`).
        """
        if scorer is None:
            anchors = self.anchors(description)
            if not (domain or self.domain):
                raise ValueError("domain unknown: pass domain= ('medical' or 'industrial') or a modality preset")
            pred = self._fast(images.to(self.device), anchors, str(Domain(domain or self.domain)))
            return Prediction(*(t.detach().float().cpu() for t in pred))
        feats, pred = self.encode(images, description, domain)
        domain = str(Domain(domain or self.domain))
        if scorer.memory.domain != domain:
            raise ValueError(f"the reference memory of {scorer.memory.class_name!r} was built for domain "
                             f"{scorer.memory.domain!r}, these slices run as {domain!r}")
        with torch.inference_mode():
            combined = scorer.combine(pred, feats.levels, tuple(self.model.grid_size), domain)
        return Prediction(*(t.detach().float().cpu() for t in combined))

    def reference_scorer(self, description: str, preset: str):
        """The reference memory for slices of ``description`` under ``preset`` (None without :attr:`references`).

        Raises:
            ValueError: a memory is set but has none for this class and preset.
        """
        if self.references is None:
            return None
        scorer = self.references.get((description, preset))
        if scorer is None:
            known = sorted(f"{s.memory.class_name} ({s.memory.modality})" for s in self.references.values())
            msg = (f"no reference memory for the class described as {description!r} preprocessed as {preset!r} "
                   f"(the memory holds: {', '.join(known)}); build references of this class and preset")
            raise ValueError(msg)
        return scorer

    def predict_slices(
        self, slices: Sequence[torch.Tensor], description: str, modality: str | None = None, domain: str | None = None,
        keep_model_maps: bool = False,
    ) -> SlicePredictions:
        """Predict N loaded slices (C, H, W) and resize each map back to its (H, W).

        Args:
            slices: loaded slices, any sizes.
            description: class description for the anchors.
            modality: preset overriding the predictor's (e.g. from a manifest line); "auto" or an
                "auto" predictor without one picks the preset once for all ``slices``.
            domain: domain overriding the predictor's (default: the preset's).
            keep_model_maps: also return the S x S maps (manifest runs write them for the paper
                protocol; a volume's would otherwise cost S * S * 4 bytes per slice for nothing).

        Returns:
            :class:`SlicePredictions` in the order of ``slices``.
        """
        name = resolve_modality_name(modality or self.modality, allow_auto=True)
        if name == AUTO and slices:
            choice = _auto_choice(slices)
            logger.info("modality auto: %s (%s)", choice.name, choice.reason)
            name = choice.name
        if name != AUTO:
            domain = self.domain_for(name, domain)
        _announce_small(slices, patch_size(self.model.config.backbone))
        scorer = self.reference_scorer(description, name)
        maps, model_maps, scores, globals_, maxima = [], [], [], [], []
        bar = tqdm(total=len(slices), unit="slice", leave=False, dynamic_ncols=True,
                   disable=None if self.progress and len(slices) > self.batch_size else True)
        for start in range(0, len(slices), self.batch_size):
            chunk = slices[start : start + self.batch_size]
            batch = torch.stack([self.preprocess(s, name) for s in chunk])  # (B, 3, S, S)
            pred = self.predict_tensor(batch, description, domain, scorer)
            _check_finite(pred, start, len(chunk), scorer)
            maps += [resize_map(m, s.shape[-2:]) for m, s in zip(pred.anomaly_map, chunk, strict=True)]
            if keep_model_maps:
                model_maps += [m.numpy().copy() for m in pred.anomaly_map]  # a copy: the batch tensor can go
            scores.append(pred.image_score)
            globals_.append(pred.global_score)
            maxima.append(pred.map_max)
            bar.update(len(chunk))
        bar.close()

        def cat(parts: list[torch.Tensor]) -> np.ndarray:
            return torch.cat(parts).numpy() if parts else np.zeros(0, np.float32)

        return SlicePredictions(maps, cat(scores), cat(globals_), cat(maxima), model_maps)


def _check_finite(pred: Prediction, start: int, count: int, scorer) -> None:
    """Refuse a prediction holding NaN or infinite values: written, it would be an all-NaN map and a null
    score under "done"; raised, the case fails with this reason and the run goes on."""
    bad = [name for name, values in zip(("anomaly map", "image score", "global score"), pred[:3], strict=False)
           if not bool(torch.isfinite(values).all())]
    if bad:
        cause = ("the reference memory or " if scorer is not None else "") + "the network's weights"
        raise ValueError(f"the {' and '.join(bad)} of slice(s) {start}..{start + count - 1} hold non-finite values "
                         f"(NaN or infinity): {cause} produce them; nothing is written for this case")
