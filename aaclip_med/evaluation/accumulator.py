"""Incremental, exact accumulation of pixel and image scores, fed one image at a time.

Memory (documented bound): every pixel is kept once, at full precision, and nothing else per
pixel: a normal pixel costs 4 bytes (its float32 score), an anomalous pixel 8 bytes (a uint64 key
packing its float32 score and its ground-truth region id). Both buffers are sorted in place at the
end (numpy's default sort needs no index array), and the metrics then walk the positives in
chunks of 4 M, so the temporaries stay below ~200 MB. 2000 x 518 x 518 maps with 5 % anomalous
pixels therefore need about 2.2 GB; no float64 copy of the pixels is ever made.

Buffers grow by 25 % with ``ndarray.resize`` (realloc / mremap for large blocks), so growing
needs no second full copy, only up to 25 % slack; pass ``capacity`` when the pixel count is known in advance.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from aaclip_med.evaluation.binary_metrics import BinaryMetrics, compute_binary_metrics, pack_positive_keys

__all__ = ["GrowableArray", "PixelAccumulator", "ImageAccumulator", "as_float32_scores"]

logger = logging.getLogger(__name__)


def as_float32_scores(values: np.ndarray, what: str) -> np.ndarray:
    """Return ``values`` as float32 with -0.0 folded into +0.0; reject NaN.

    Args:
        values: any real array (numpy or torch).
        what: names the source in the error message (file name, argument).

    Raises:
        ValueError: when a value is NaN.
    """
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    scores = np.asarray(values, dtype=np.float32)
    if np.isnan(scores).any():
        msg = f"{what}: anomaly scores contain NaN; the model output or the file is broken"
        raise ValueError(msg)
    # -0.0 + 0.0 == +0.0, so equal scores also have equal bit patterns for the sort keys.
    return scores + np.float32(0.0)


class GrowableArray:
    """A 1-D array that grows in place (amortised, by 25 %) without a full second copy.

    Args:
        dtype: element type.
        capacity: initial number of elements.
    """

    def __init__(self, dtype: np.dtype, capacity: int = 0) -> None:
        self._data = np.empty(max(int(capacity), 1024), dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, values: np.ndarray) -> None:
        """Append ``values`` (1-D, same dtype)."""
        needed = self._size + values.size
        if needed > self._data.size:
            # refcheck=False is safe: no view of _data ever leaves this object before finish().
            # Grow by 1/4: numpy zero-fills the new tail, so the slack is resident memory.
            self._data.resize(max(needed, self._data.size + self._data.size // 4), refcheck=False)
        self._data[self._size : needed] = values
        self._size = needed

    def finish(self) -> np.ndarray:
        """Trim to size and hand over the array (the buffer is not used afterwards)."""
        self._data.resize(self._size, refcheck=False)
        data, self._data, self._size = self._data, np.empty(0, self._data.dtype), 0
        return data


class PixelAccumulator:
    """Exact pixel-level metrics (AUROC, AP, F1-max, AUPRO) over many maps.

    Args:
        fpr_limit: FPR limit of AUPRO.
        connectivity: 1 (4-neighbourhood) or 2 (8-neighbourhood, as the MVTec AD evaluation
            code) for the connected ground-truth regions of AUPRO.
        track_regions: False skips the connected-component labelling (no AUPRO).
        capacity: expected number of pixels, to allocate once.
    """

    def __init__(
        self, fpr_limit: float = 0.3, connectivity: int = 2, track_regions: bool = True, capacity: int = 0
    ) -> None:
        if not 0.0 < fpr_limit <= 1.0:
            msg = f"fpr_limit must be in (0, 1], got {fpr_limit}"
            raise ValueError(msg)
        if connectivity not in (1, 2):
            msg = f"connectivity must be 1 or 2, got {connectivity}"
            raise ValueError(msg)
        self.fpr_limit = fpr_limit
        self.track_regions = track_regions
        self._structure = ndimage.generate_binary_structure(2, connectivity)
        self._neg = GrowableArray(np.float32, capacity)
        self._pos = GrowableArray(np.uint64, capacity // 16)
        self._n_regions = 0

    def update(self, score_map: np.ndarray, mask: np.ndarray, source: str = "map") -> None:
        """Add one (H, W) anomaly map and its ground-truth mask (non-zero = anomalous).

        Args:
            score_map: (H, W) scores.
            mask: (H, W) ground truth.
            source: names the map in error messages.

        Raises:
            ValueError: on NaN scores or a shape mismatch.
        """
        scores = as_float32_scores(score_map, source)
        truth = np.asarray(mask) != 0
        if scores.shape != truth.shape or scores.ndim != 2:
            msg = (
                f"{source}: map shape {scores.shape} does not match mask shape {truth.shape} (need equal 2D)"
            )
            raise ValueError(msg)
        self._neg.extend(scores[~truth])
        if not truth.any():
            return
        regions = None
        if self.track_regions:
            labels, count = ndimage.label(truth, structure=self._structure)
            regions = (labels[truth] - 1 + self._n_regions).astype(np.uint32)
            self._n_regions += count
        self._pos.extend(pack_positive_keys(scores[truth], regions))

    def compute(self, curve_points: int = 200) -> tuple[BinaryMetrics | None, str | None]:
        """Sort and compute; the accumulator is emptied.

        Returns:
            (metrics, None), or (None, reason) when a class of pixel is missing.
        """
        neg, pos = self._neg.finish(), self._pos.finish()
        if pos.size == 0 or neg.size == 0:
            which = "anomalous" if pos.size == 0 else "normal"
            return None, f"no {which} pixels in the ground truth"
        logger.debug("sorting %d normal and %d anomalous pixels", neg.size, pos.size)
        neg.sort()
        pos.sort()
        n_regions = self._n_regions if self.track_regions else 0
        return compute_binary_metrics(neg, pos, n_regions, self.fpr_limit, curve_points), None


class ImageAccumulator:
    """Image-level scores and labels; metrics are undefined when only one label occurs."""

    def __init__(self) -> None:
        self._scores: list[float] = []
        self._labels: list[bool] = []

    def update(self, score: float, label: float) -> None:
        """Add one image score and its label (non-zero = anomalous)."""
        self._scores.append(float(score))
        self._labels.append(bool(label))

    def compute(self, curve_points: int = 1000) -> tuple[BinaryMetrics | None, str | None]:
        """Return (metrics, None), or (None, reason) when the labels are all equal."""
        scores = as_float32_scores(np.asarray(self._scores, dtype=np.float64), "image scores")
        labels = np.asarray(self._labels, dtype=bool)
        if labels.size == 0:
            return None, "not defined: no images"
        if labels.all() or not labels.any():
            kind = "anomalous" if labels.all() else "normal"
            return None, f"not defined: all {labels.size} images are {kind} (a single label)"
        neg = np.sort(scores[~labels])
        pos = np.sort(pack_positive_keys(scores[labels]))
        return compute_binary_metrics(neg, pos, 0, curve_points=curve_points), None
