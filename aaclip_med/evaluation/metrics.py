"""Pure metric functions on in-memory arrays (no I/O), all exact at full resolution.

Values are fractions in [0, 1]. A metric that cannot be defined (a single label among images, no
anomalous or no normal pixel) is ``None``; :func:`pixel_metrics` and :func:`image_metrics` also
return the reason. For data too large for memory, feed
:class:`~aaclip_med.evaluation.accumulator.PixelAccumulator` image by image instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from aaclip_med.evaluation.accumulator import ImageAccumulator, PixelAccumulator
from aaclip_med.evaluation.binary_metrics import BinaryMetrics

__all__ = ["pixel_metrics", "image_metrics", "pixel_and_image_auroc"]


def _pairs(maps: Iterable, masks: Iterable) -> Iterable[tuple[np.ndarray, np.ndarray, str]]:
    """Yield (H, W) map/mask pairs from (B, H, W) arrays, (B, 1, H, W) tensors or sequences."""
    for i, (score_map, mask) in enumerate(zip(maps, masks, strict=True)):
        score_map = (
            score_map.detach().cpu().numpy() if hasattr(score_map, "detach") else np.asarray(score_map)
        )
        mask = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
        yield np.squeeze(score_map), np.squeeze(mask), f"map {i}"


def pixel_metrics(
    maps: Iterable, masks: Iterable, fpr_limit: float = 0.3, with_aupro: bool = True
) -> tuple[BinaryMetrics | None, str | None]:
    """Exact pixel-level AUROC, AP, F1-max and AUPRO.

    Args:
        maps: (B, H, W) anomaly maps, or a sequence of (H, W) maps of varying size.
        masks: matching ground truth, non-zero = anomalous.
        fpr_limit: FPR limit of AUPRO.
        with_aupro: False skips the connected-region labelling.

    Returns:
        (metrics, None), or (None, reason) when a pixel class is missing.
    """
    acc = PixelAccumulator(fpr_limit=fpr_limit, track_regions=with_aupro)
    for score_map, mask, name in _pairs(maps, masks):
        acc.update(score_map, mask, source=name)
    return acc.compute()


def image_metrics(
    scores: Sequence[float], labels: Sequence[float]
) -> tuple[BinaryMetrics | None, str | None]:
    """Exact image-level AUROC, AP and F1-max.

    Args:
        scores: (B,) image scores.
        labels: (B,) labels, non-zero = anomalous.

    Returns:
        (metrics, None), or (None, reason) when only one label occurs.
    """
    scores = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64)
    labels = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
    if scores.shape != labels.shape:
        msg = f"scores {scores.shape} and labels {labels.shape} must have the same shape"
        raise ValueError(msg)
    acc = ImageAccumulator()
    for score, label in zip(scores.ravel(), labels.ravel(), strict=True):
        acc.update(score, label)
    return acc.compute()


def pixel_and_image_auroc(
    maps: Iterable, masks: Iterable, scores: Sequence[float], labels: Sequence[float]
) -> dict[str, float | str | None]:
    """Per-epoch validation summary for the training engines (in-memory arrays).

    Args:
        maps: (B, H, W) anomaly maps (numpy or torch).
        masks: (B, H, W) ground truth, non-zero = anomalous.
        scores: (B,) image scores.
        labels: (B,) image labels.

    Returns:
        ``{"pixel_auroc", "image_auroc"}`` as floats or None, plus ``"pixel_auroc_reason"`` /
        ``"image_auroc_reason"`` when a value is not defined.
    """
    out: dict[str, float | str | None] = {}
    for name, (metrics, reason) in (
        ("pixel_auroc", pixel_metrics(maps, masks, with_aupro=False)),
        ("image_auroc", image_metrics(scores, labels)),
    ):
        out[name] = None if metrics is None else metrics.auroc
        if reason is not None:
            out[f"{name}_reason"] = reason
    return out
