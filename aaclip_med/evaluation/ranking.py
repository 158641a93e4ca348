"""Exact ranking statistics (AUROC, AP, F1-max, PRO) from sorted float32 scores.

Every metric here is a sum or a maximum over *positive* samples of quantities that only need
ranks: how many negatives score below / equal to a positive, and how many positives score at
least as high. With the negatives sorted (float32) and the positives sorted as packed uint64 keys
(float32 order key in the high 32 bits, region id in the low 32 bits), these ranks come from
``np.searchsorted`` on chunks of positives, so no per-threshold curve of the size of the data is
ever built and ties are handled exactly:

- AUROC = sum_p (#neg < s_p + 0.5 #neg == s_p) / (P N), which is the trapezoidal ROC area
  scikit-learn computes.
- AP = (1/P) sum_p precision(s_p), precision(t) = TP(>=t) / (TP(>=t) + FP(>=t)); this is
  scikit-learn's step-wise ``average_precision_score``.
- F1-max = max_p 2 TP(>=s_p) / (TP(>=s_p) + FP(>=s_p) + P); the maximum over all thresholds is
  always reached at a positive score (raising the threshold up to the next positive keeps TP and
  cannot add FP).

Memory is the two sorted arrays plus one chunk of int64 temporaries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CHUNK",
    "RankedChunk",
    "decode_score_keys",
    "encode_score_keys",
    "iter_ranked_chunks",
    "threshold_counts",
]

CHUNK = 1 << 22  # positives per chunk: 4 M x a few int64 temporaries = ~150 MB at most
_SIGN = np.uint32(0x80000000)


def encode_score_keys(scores: np.ndarray) -> np.ndarray:
    """Map float32 scores to uint32 keys whose unsigned order is the float order.

    Args:
        scores: finite float32 values; -0.0 must already be folded into +0.0.

    Returns:
        uint32 array of the same shape.
    """
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.uint32)
    # Positive floats: set the sign bit so they sort above all negatives; negative floats: flip
    # every bit so that larger magnitudes sort lower.
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def decode_score_keys(keys: np.ndarray) -> np.ndarray:
    """Invert :func:`encode_score_keys` (uint32 keys -> float32 scores)."""
    keys = np.asarray(keys, dtype=np.uint32)
    bits = np.where(keys & _SIGN, keys & ~_SIGN, ~keys)
    return bits.view(np.float32)


def _pos_keys_floor(scores: np.ndarray) -> np.ndarray:
    """Smallest packed uint64 key of each score, for 'first positive >= score' searches."""
    return encode_score_keys(scores).astype(np.uint64) << np.uint64(32)


@dataclass(frozen=True)
class RankedChunk:
    """Ranks of one chunk of sorted positives.

    Attributes:
        scores: (n,) float32 positive scores, ascending.
        regions: (n,) uint32 region id of each positive.
        neg_lt: (n,) int64 number of negatives scoring strictly lower.
        neg_le: (n,) int64 number of negatives scoring lower or equal.
        pos_ge: (n,) int64 number of positives scoring higher or equal (TP at this threshold).
    """

    scores: np.ndarray
    regions: np.ndarray
    neg_lt: np.ndarray
    neg_le: np.ndarray
    pos_ge: np.ndarray


def iter_ranked_chunks(
    neg_sorted: np.ndarray, pos_keys_sorted: np.ndarray, chunk: int = CHUNK
) -> Iterator[RankedChunk]:
    """Yield the ranks of the sorted positives, ``chunk`` at a time.

    Args:
        neg_sorted: (N,) float32 negative scores, ascending.
        pos_keys_sorted: (P,) uint64 packed keys (score key << 32 | region id), ascending.
        chunk: positives per chunk (bounds the temporaries).

    Yields:
        One :class:`RankedChunk` per slice of positives.
    """
    n_pos = pos_keys_sorted.size
    for start in range(0, n_pos, chunk):
        keys = pos_keys_sorted[start : start + chunk]
        scores = decode_score_keys((keys >> np.uint64(32)).astype(np.uint32))
        regions = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        # Queries are ascending, which keeps numpy's binary search cache friendly.
        neg_lt = np.searchsorted(neg_sorted, scores, side="left").astype(np.int64)
        neg_le = np.searchsorted(neg_sorted, scores, side="right").astype(np.int64)
        first = np.searchsorted(pos_keys_sorted, _pos_keys_floor(scores), side="left")
        pos_ge = n_pos - first.astype(np.int64)
        yield RankedChunk(scores, regions, neg_lt, neg_le, pos_ge)


def threshold_counts(
    neg_sorted: np.ndarray, pos_keys_sorted: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (TP, FP) counts of the rule ``score >= t`` at each threshold.

    Args:
        neg_sorted: (N,) float32 negatives, ascending.
        pos_keys_sorted: (P,) uint64 packed positive keys, ascending.
        thresholds: (T,) float32 thresholds.

    Returns:
        (tp, fp), each (T,) int64.
    """
    thresholds = np.asarray(thresholds, dtype=np.float32) + np.float32(0.0)
    fp = neg_sorted.size - np.searchsorted(neg_sorted, thresholds, side="left").astype(np.int64)
    first = np.searchsorted(pos_keys_sorted, _pos_keys_floor(thresholds), side="left")
    tp = pos_keys_sorted.size - first.astype(np.int64)
    return tp, fp
