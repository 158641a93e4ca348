"""Streaming evaluation of one class: maps are read from disk, never all held at once.

The paper protocol needs per-class minima and maxima before any score can be normalised, so it
reads the maps twice (a cheap min/max pass, then the metric pass) instead of keeping them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aaclip_med.evaluation.accumulator import ImageAccumulator, PixelAccumulator
from aaclip_med.evaluation.binary_metrics import BinaryMetrics
from aaclip_med.evaluation.predictions import Sample, load_map, load_mask
from aaclip_med.evaluation.protocol import MinMax, Protocol
from aaclip_med.scoring import combine_image_score

__all__ = ["ClassResult", "Normaliser", "evaluate_class", "METRIC_NAMES"]

logger = logging.getLogger(__name__)

METRIC_NAMES = (
    "pixel_auroc",
    "pixel_ap",
    "pixel_aupro",
    "pixel_f1_max",
    "image_auroc",
    "image_ap",
    "image_f1_max",
)


@dataclass
class Normaliser:
    """Per-class score transform of a protocol (identity for ``deployment``)."""

    protocol: Protocol
    maps: MinMax = field(default_factory=MinMax)
    global_scores: MinMax = field(default_factory=MinMax)

    def map(self, score_map: np.ndarray) -> np.ndarray:
        """The map as the metrics see it (float32)."""
        if self.protocol == Protocol.PAPER:
            return self.maps.apply(score_map)
        return np.asarray(score_map, dtype=np.float32)

    def image_score(self, sample: Sample, score_map: np.ndarray) -> float:
        """The image score as the metrics see it; ``score_map`` already went through :meth:`map`."""
        if self.protocol == Protocol.PAPER:
            s_g = float(self.global_scores.apply(sample.global_score))
            return float(combine_image_score(float(score_map.max()), s_g, sample.domain))
        return sample.image_score

    def to_dict(self) -> dict | None:
        """The normalisation ranges for the report (None for ``deployment``)."""
        if self.protocol != Protocol.PAPER:
            return None
        return {"map": self.maps.to_dict(), "global_score": self.global_scores.to_dict()}


@dataclass
class ClassResult:
    """Metrics of one class and the scores needed to pick example overlays."""

    class_name: str
    samples: list[Sample]
    image_scores: list[float]
    normaliser: Normaliser
    pixel: BinaryMetrics | None
    pixel_reason: str | None
    image: BinaryMetrics | None
    image_reason: str | None

    def row(self) -> dict:
        """One JSON/CSV-ready row: counts and metric values (None when not defined)."""
        out: dict = {
            "class_name": self.class_name,
            "n_images": len(self.samples),
            "n_anomalous": sum(1 for s in self.samples if s.label),
        }
        for level, metrics in (("pixel", self.pixel), ("image", self.image)):
            for name in ("auroc", "ap", "f1_max", "aupro"):
                key = f"{level}_{name}"
                if key in METRIC_NAMES:
                    out[key] = None if metrics is None else getattr(metrics, name)
        out["undefined"] = {
            k: v for k, v in (("pixel", self.pixel_reason), ("image", self.image_reason)) if v
        }
        return out


def _fit_normaliser(samples: list[Sample], predictions_dir: Path, protocol: Protocol) -> Normaliser:
    normaliser = Normaliser(protocol)
    if protocol != Protocol.PAPER:
        return normaliser
    for sample in tqdm(samples, desc="min/max pass", leave=False, disable=None):
        normaliser.maps.update(load_map(predictions_dir, sample))
        if not np.isfinite(sample.global_score):
            msg = f"prediction {sample.index} ({sample.image_path}) has no global_score, needed by the paper protocol"
            raise ValueError(msg)
        normaliser.global_scores.update(sample.global_score)
    return normaliser


def evaluate_class(
    class_name: str,
    samples: list[Sample],
    predictions_dir: Path,
    dataset_root: Path,
    protocol: Protocol,
    fpr_limit: float = 0.3,
) -> ClassResult:
    """Exact metrics of one class, streaming its maps and masks from disk.

    Args:
        class_name: the class.
        samples: its samples.
        predictions_dir: predictions directory (maps are relative to it).
        dataset_root: dataset root (masks are relative to it).
        protocol: ``paper`` or ``deployment``.
        fpr_limit: FPR limit of AUPRO.

    Returns:
        The :class:`ClassResult`.
    """
    normaliser = _fit_normaliser(samples, predictions_dir, protocol)
    pixels, images = PixelAccumulator(fpr_limit=fpr_limit), ImageAccumulator()
    scores = []
    for sample in tqdm(samples, desc=f"evaluating {class_name}", leave=False, disable=None):
        raw = load_map(predictions_dir, sample)
        mask = load_mask(dataset_root, sample, raw.shape)
        score_map = normaliser.map(raw)
        pixels.update(score_map, mask, source=str(Path(predictions_dir) / sample.map_path))
        scores.append(normaliser.image_score(sample, score_map))
        images.update(scores[-1], sample.label)
    pixel, pixel_reason = pixels.compute()
    image, image_reason = images.compute()
    for level, reason in (("pixel", pixel_reason), ("image", image_reason)):
        if reason:
            logger.info("class %s: %s metrics %s", class_name, level, reason)
    return ClassResult(class_name, samples, scores, normaliser, pixel, pixel_reason, image, image_reason)
