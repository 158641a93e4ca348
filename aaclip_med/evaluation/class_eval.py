"""Streaming evaluation of one class: maps are read from disk, never all held at once.

``deployment`` scores the maps at the source's size against the masks at their own size.
``paper`` computes what the published runs computed: the S x S maps the model produced
(``model_maps/``) against masks resized to S x S with PIL NEAREST, both map and global score
min-max normalised per class in float32, then the image score rule on the normalised values. It
needs the per-class minima and maxima before any score can be normalised, so it reads the maps
twice (a cheap min/max pass, then the metric pass) instead of keeping them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aaclip_med.data.cache import VolumeCache
from aaclip_med.evaluation.accumulator import ImageAccumulator, PixelAccumulator
from aaclip_med.evaluation.binary_metrics import BinaryMetrics
from aaclip_med.evaluation.predictions import Sample, load_map, load_mask, load_model_map
from aaclip_med.evaluation.protocol import MinMax, Protocol
from aaclip_med.scoring import combine_image_score

__all__ = ["ClassResult", "Normaliser", "evaluate_class", "scored_map_and_mask", "METRIC_NAMES"]

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

    def image_scores(self, samples: list[Sample], map_maxima: list[float]) -> np.ndarray:
        """The image scores as the metrics see them (float32).

        Args:
            samples: the class's samples.
            map_maxima: max of each sample's map after :meth:`map`, in the same order.
        """
        if self.protocol != Protocol.PAPER:
            return np.asarray([s.image_score for s in samples], dtype=np.float32)
        peaks = np.asarray(map_maxima, dtype=np.float32)
        s_g = self.global_scores.apply(np.asarray([s.global_score for s in samples], dtype=np.float32))
        out = np.empty(len(samples), dtype=np.float32)
        for domain in {s.domain for s in samples}:  # float32 arrays: the published float32 arithmetic
            rows = np.asarray([s.domain == domain for s in samples])
            out[rows] = combine_image_score(peaks[rows], s_g[rows], domain)
        return out

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
    value_range: tuple[float, float] = (0.0, 1.0)  # (min, max) of the maps as evaluated: one colour scale per class

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


def scored_map_and_mask(
    sample: Sample, predictions_dir: Path, dataset_root: Path, protocol: Protocol, cache: VolumeCache | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The raw map and binary mask that ``protocol`` scores for ``sample``.

    ``paper``: the (S, S) model map and the mask resized to (S, S) with PIL NEAREST;
    ``deployment``: the map at the source's size and the mask at its own (equal) size. ``cache``
    keeps decoded mask volumes (see :func:`~aaclip_med.evaluation.predictions.load_mask`).
    """
    if protocol == Protocol.PAPER:
        raw = load_model_map(predictions_dir, sample)
        return raw, load_mask(dataset_root, sample, raw.shape, resize=True, cache=cache)
    raw = load_map(predictions_dir, sample)
    return raw, load_mask(dataset_root, sample, raw.shape, cache=cache)


def _fit_normaliser(samples: list[Sample], predictions_dir: Path, protocol: Protocol) -> Normaliser:
    normaliser = Normaliser(protocol)
    if protocol != Protocol.PAPER:
        return normaliser
    for sample in tqdm(samples, desc="min/max pass", leave=False, disable=None):
        normaliser.maps.update(load_model_map(predictions_dir, sample))
        if not np.isfinite(sample.global_score):
            msg = f"prediction {sample.index} ({sample.image_path}) has no global_score, needed by the paper protocol"
            raise ValueError(msg)
        normaliser.global_scores.update(np.float32(sample.global_score))
    return normaliser


def evaluate_class(
    class_name: str,
    samples: list[Sample],
    predictions_dir: Path,
    dataset_root: Path,
    protocol: Protocol,
    fpr_limit: float = 0.3,
    cache: VolumeCache | None = None,
) -> ClassResult:
    """Exact metrics of one class, streaming its maps and masks from disk.

    Args:
        class_name: the class.
        samples: its samples.
        predictions_dir: predictions directory (maps are relative to it).
        dataset_root: dataset root (masks are relative to it).
        protocol: ``paper`` or ``deployment``.
        fpr_limit: FPR limit of AUPRO.
        cache: the evaluation's volume cache (mask volumes are decoded once per case when it holds them).

    Returns:
        The :class:`ClassResult`, with the value range of its maps as evaluated (the report's and
        viewer's colour scale: no second pass over the maps).
    """
    normaliser = _fit_normaliser(samples, predictions_dir, protocol)
    pixels, images = PixelAccumulator(fpr_limit=fpr_limit), ImageAccumulator()
    maxima, low = [], np.inf
    for sample in tqdm(samples, desc=f"evaluating {class_name}", leave=False, disable=None):
        raw, mask = scored_map_and_mask(sample, predictions_dir, dataset_root, protocol, cache)
        score_map = normaliser.map(raw)
        pixels.update(score_map, mask, source=str(Path(predictions_dir) / sample.map_path))
        maxima.append(float(score_map.max()))
        low = min(low, float(score_map.min()))
    scores = normaliser.image_scores(samples, maxima)
    for score, sample in zip(scores, samples, strict=True):
        images.update(float(score), sample.label)
    pixel, pixel_reason = pixels.compute()
    image, image_reason = images.compute()
    for level, reason in (("pixel", pixel_reason), ("image", image_reason)):
        if reason:
            logger.info("class %s: %s metrics %s", class_name, level, reason)
    high = max(maxima, default=low)
    value_range = (float(low), max(float(high), float(low) + 1e-12))
    return ClassResult(class_name, samples, scores.tolist(), normaliser, pixel, pixel_reason, image, image_reason,
                       value_range)
