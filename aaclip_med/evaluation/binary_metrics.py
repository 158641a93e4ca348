"""All exact ranking metrics of one set of scores in a single pass over the positives.

Shared by pixel-level (hundreds of millions of scores, with ground-truth regions for AUPRO) and
image-level metrics (one score per image), so there is a single implementation of each formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aaclip_med.evaluation.aupro import RegionSums, limit_segment, pro_area
from aaclip_med.evaluation.ranking import (
    CHUNK,
    decode_score_keys,
    encode_score_keys,
    iter_ranked_chunks,
    threshold_counts,
)

__all__ = ["BinaryMetrics", "Curves", "compute_binary_metrics", "pack_positive_keys"]


@dataclass(frozen=True)
class Curves:
    """Exact points of the ROC and precision-recall curves, thinned for plotting.

    Attributes:
        thresholds: (T,) descending thresholds (rule: score >= t).
        fpr, tpr: (T,) ROC points.
        precision, recall: (T,) PR points.
    """

    thresholds: np.ndarray
    fpr: np.ndarray
    tpr: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


@dataclass(frozen=True)
class BinaryMetrics:
    """Exact metrics of one positive/negative split (values in [0, 1]).

    Attributes:
        auroc, ap, f1_max: ranking metrics.
        f1_threshold: the score threshold reaching ``f1_max``.
        aupro: PRO area up to the FPR limit, normalised (None when regions were not tracked).
        n_pos, n_neg: counts of positives and negatives.
        n_regions: ground-truth regions (0 when not tracked).
        curves: thinned ROC/PR points.
    """

    auroc: float
    ap: float
    f1_max: float
    f1_threshold: float
    aupro: float | None
    n_pos: int
    n_neg: int
    n_regions: int
    curves: Curves = field(repr=False)


def pack_positive_keys(scores: np.ndarray, regions: np.ndarray | None = None) -> np.ndarray:
    """Pack float32 scores and uint32 region ids into sortable uint64 keys (score first).

    Args:
        scores: (n,) finite float32 scores with -0.0 folded into +0.0.
        regions: (n,) region ids, or None for all zeros.

    Returns:
        (n,) uint64 keys.
    """
    keys = encode_score_keys(scores).astype(np.uint64) << np.uint64(32)
    if regions is not None:
        keys |= np.asarray(regions, dtype=np.uint64)
    return keys


def _thin_thresholds(neg_sorted: np.ndarray, pos_keys_sorted: np.ndarray, n_points: int) -> np.ndarray:
    """Thresholds at evenly spaced ranks of both classes, descending, unique."""
    parts = []
    for size, pick in (
        (neg_sorted.size, lambda i: neg_sorted[i]),
        (
            pos_keys_sorted.size,
            lambda i: decode_score_keys((pos_keys_sorted[i] >> np.uint64(32)).astype(np.uint32)),
        ),
    ):
        if size:
            idx = np.unique(np.linspace(0, size - 1, min(size, n_points)).round().astype(np.int64))
            parts.append(np.asarray(pick(idx), dtype=np.float32))
    return np.unique(np.concatenate(parts))[::-1]


def _curves(neg_sorted: np.ndarray, pos_keys_sorted: np.ndarray, n_points: int) -> Curves:
    thresholds = _thin_thresholds(neg_sorted, pos_keys_sorted, n_points)
    tp, fp = threshold_counts(neg_sorted, pos_keys_sorted, thresholds)
    tpr = tp / pos_keys_sorted.size
    fpr = fp / neg_sorted.size
    precision = tp / np.maximum(tp + fp, 1)
    # Start both curves at the conventional (0, 0) ROC corner and (recall 0, precision 1).
    return Curves(
        thresholds=np.concatenate([[np.inf], thresholds]),
        fpr=np.concatenate([[0.0], fpr]),
        tpr=np.concatenate([[0.0], tpr]),
        precision=np.concatenate([[1.0], precision]),
        recall=np.concatenate([[0.0], tpr]),
    )


def compute_binary_metrics(
    neg_sorted: np.ndarray,
    pos_keys_sorted: np.ndarray,
    n_regions: int = 0,
    fpr_limit: float = 0.3,
    curve_points: int = 200,
    chunk: int = CHUNK,
) -> BinaryMetrics:
    """Compute AUROC, AP, F1-max (and AUPRO when ``n_regions`` > 0) exactly.

    Args:
        neg_sorted: (N,) float32 negative scores, ascending, N >= 1.
        pos_keys_sorted: (P,) uint64 packed positive keys (see :func:`pack_positive_keys`),
            ascending, P >= 1; the low 32 bits are region ids in [0, n_regions).
        n_regions: ground-truth regions for AUPRO; 0 skips AUPRO.
        fpr_limit: FPR limit of AUPRO.
        curve_points: points per class used to thin the plotted curves.
        chunk: positives per chunk (bounds temporary memory).

    Returns:
        The :class:`BinaryMetrics`.
    """
    n_neg, n_pos = int(neg_sorted.size), int(pos_keys_sorted.size)
    regions = RegionSums(n_regions, limit_segment(neg_sorted, fpr_limit)) if n_regions else None
    rank_sum = 0  # sum_p (2 #neg < s_p + #neg == s_p), exact in int64 up to ~4e18
    precision_sum = 0.0
    best_f1, best_threshold = -1.0, float("nan")
    for part in iter_ranked_chunks(neg_sorted, pos_keys_sorted, chunk):
        rank_sum += int(np.sum(part.neg_lt + part.neg_le))
        fp = n_neg - part.neg_lt
        precision_sum += float(np.sum(part.pos_ge / (part.pos_ge + fp)))
        f1 = 2.0 * part.pos_ge / (part.pos_ge + fp + n_pos)
        i = int(np.argmax(f1))
        if f1[i] > best_f1:
            best_f1, best_threshold = float(f1[i]), float(part.scores[i])
        if regions is not None:
            regions.add(part.scores, part.regions, part.neg_lt, part.neg_le)
    return BinaryMetrics(
        auroc=rank_sum / (2.0 * n_pos * n_neg),
        ap=precision_sum / n_pos,
        f1_max=best_f1,
        f1_threshold=best_threshold,
        aupro=pro_area(regions, fpr_limit) if regions is not None else None,
        n_pos=n_pos,
        n_neg=n_neg,
        n_regions=n_regions,
        curves=_curves(neg_sorted, pos_keys_sorted, curve_points),
    )
