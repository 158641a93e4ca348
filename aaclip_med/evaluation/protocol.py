"""Score protocols: how maps and image scores are prepared before the metrics (spec section 5).

``paper``: pixel maps and global scores are min-max normalised per class over the whole test set
of that class, then the image score is recombined (industrial ``0.5 * max(map) + 0.5 * s_g``,
medical ``max(map)``). It uses test-set statistics, so it is only for comparison with published
tables. ``deployment``: the maps and image scores exactly as inference wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from monai.utils import StrEnum

__all__ = ["Protocol", "MinMax"]


class Protocol(StrEnum):
    """Evaluation protocols."""

    PAPER = "paper"
    DEPLOYMENT = "deployment"


@dataclass
class MinMax:
    """Running minimum and maximum, for the per-class normalisation of the paper protocol."""

    low: float = float("inf")
    high: float = float("-inf")

    def update(self, values: np.ndarray | float) -> None:
        """Widen the range to include ``values``."""
        values = np.asarray(values)
        if values.size:
            self.low = min(self.low, float(values.min()))
            self.high = max(self.high, float(values.max()))

    def apply(self, values: np.ndarray | float) -> np.ndarray:
        """Map ``values`` to [0, 1] as float32; a constant range maps to 0 (nothing to rank)."""
        values = np.asarray(values, dtype=np.float64)
        span = self.high - self.low
        if not np.isfinite(span) or span <= 0:
            return np.zeros(values.shape, dtype=np.float32)
        return ((values - self.low) / span).astype(np.float32)

    def to_dict(self) -> dict[str, float]:
        """The range as JSON-ready numbers."""
        return {"min": self.low, "max": self.high}
