"""Exact per-region overlap (PRO) area up to an FPR limit.

The PRO curve pairs, for every threshold t (predict ``score >= t``), the false-positive rate over
all normal pixels, FPR(t), with the mean over ground-truth regions of the fraction of each region
covered, PRO(t). Both are step functions of t; joining the points of consecutive thresholds by
straight lines (what a brute-force sweep plus the trapezoid rule does) gives an area that is
linear in the per-region overlaps. So the area is the mean over regions of each region's own
area, and each region's area only changes where FPR changes, i.e. at negative scores v:

    area_r = sum_v (c_v / N) * (#r > v + #r >= v) / (2 |r|)

which, regrouped per region pixel p over the negatives above the limit, is
``sum_p (#neg < s_p + #neg <= s_p) / (2 N |r|)`` restricted to the negatives that lie before the
FPR limit. The one FPR step that crosses the limit is interpolated linearly, as a sweep that
interpolates at the limit would. The result is divided by the limit, so a perfect map scores 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LimitSegment", "limit_segment", "RegionSums", "pro_area"]


@dataclass(frozen=True)
class LimitSegment:
    """The FPR step that crosses the limit.

    Attributes:
        value: negative score v* at which FPR jumps across the limit.
        n_above: negatives strictly above v* (FPR just before the step is n_above / N).
        n_at_or_above: negatives >= v* (FPR just after the step).
        n_neg: total negatives N.
    """

    value: float
    n_above: int
    n_at_or_above: int
    n_neg: int


def limit_segment(neg_sorted: np.ndarray, fpr_limit: float) -> LimitSegment:
    """Find the negative score whose FPR step contains ``fpr_limit``.

    Args:
        neg_sorted: (N,) float32 negatives, ascending, N >= 1.
        fpr_limit: in (0, 1].

    Returns:
        The :class:`LimitSegment` with n_above / N < fpr_limit <= n_at_or_above / N.
    """
    n_neg = int(neg_sorted.size)
    count = min(n_neg, max(1, math.ceil(fpr_limit * n_neg)))
    # fpr_limit * N can round up past an integer (0.3 * 10 = 3.0000000000000004).
    if count > 1 and (count - 1) / n_neg >= fpr_limit:
        count -= 1
    value = neg_sorted[n_neg - count]
    n_above = n_neg - int(np.searchsorted(neg_sorted, value, side="right"))
    n_at_or_above = n_neg - int(np.searchsorted(neg_sorted, value, side="left"))
    return LimitSegment(float(value), n_above, n_at_or_above, n_neg)


class RegionSums:
    """Per-region sums gathered chunk by chunk from the ranked positives.

    Args:
        n_regions: number of ground-truth regions (ids 0 .. n_regions - 1).
        segment: the FPR step crossing the limit.
    """

    def __init__(self, n_regions: int, segment: LimitSegment) -> None:
        self.segment = segment
        self.size = np.zeros(n_regions, dtype=np.float64)
        self.rank_sum = np.zeros(n_regions, dtype=np.float64)  # sum_p (lt_A + le_A)
        self.above = np.zeros(n_regions, dtype=np.float64)  # #r > v*
        self.at_or_above = np.zeros(n_regions, dtype=np.float64)  # #r >= v*

    def add(self, scores: np.ndarray, regions: np.ndarray, neg_lt: np.ndarray, neg_le: np.ndarray) -> None:
        """Add one chunk of positives (see :class:`~aaclip_med.evaluation.ranking.RankedChunk`)."""
        n = self.size.size
        # Only the negatives strictly above v* lie fully before the limit: indices >= start.
        start = self.segment.n_neg - self.segment.n_above
        lt_a = np.maximum(neg_lt - start, 0)
        le_a = np.maximum(neg_le - start, 0)
        self.size += np.bincount(regions, minlength=n)
        self.rank_sum += np.bincount(regions, weights=(lt_a + le_a).astype(np.float64), minlength=n)
        value = np.float32(self.segment.value)
        self.above += np.bincount(regions, weights=scores > value, minlength=n)
        self.at_or_above += np.bincount(regions, weights=scores >= value, minlength=n)


def pro_area(sums: RegionSums, fpr_limit: float) -> float:
    """Normalised PRO area (AUPRO) from the gathered per-region sums.

    Args:
        sums: per-region sums over every positive pixel.
        fpr_limit: the FPR limit used for ``sums.segment``.

    Returns:
        Area under the PRO curve from FPR 0 to ``fpr_limit``, divided by ``fpr_limit``.
    """
    seg = sums.segment
    n_neg = float(seg.n_neg)
    full = sums.rank_sum / (2.0 * n_neg * sums.size)
    fpr_before = seg.n_above / n_neg
    width = fpr_limit - fpr_before
    step = (seg.n_at_or_above - seg.n_above) / n_neg
    alpha = width / step
    o_before = sums.above / sums.size
    o_after = sums.at_or_above / sums.size
    o_limit = o_before + alpha * (o_after - o_before)
    partial = width * (o_before + o_limit) / 2.0
    return float(np.mean(full + partial) / fpr_limit)
