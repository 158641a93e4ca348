"""Score protocols: how maps and image scores are prepared before the metrics (spec section 5).

``paper``: what the published runs computed. The S x S maps the model produced (not the maps
resized to the source) are scored against masks resized to S x S with PIL NEAREST; maps and
global scores are min-max normalised per class over the whole test set of that class, in float32
as the published code did, then the image score is recombined from the normalised values
(industrial ``0.5 * max(map) + 0.5 * s_g``, medical ``max(map)``). It uses test-set statistics,
so it is only for comparison with published tables. ``deployment``: the maps at the source's
size and the image scores exactly as inference wrote them.
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
        """Map ``values`` to [0, 1]; a constant range maps to 0 (nothing to rank).

        The arithmetic is float32, ``(v - min) / (max - min)`` with float32 min and max, as the
        published evaluation normalised its float32 arrays (float64 would rank a few near-equal
        pixels differently).
        """
        values = np.asarray(values, dtype=np.float32)
        low, high = np.float32(self.low), np.float32(self.high)
        span = high - low
        if not np.isfinite(span) or span <= 0:
            return np.zeros(values.shape, dtype=np.float32)
        return (values - low) / span

    def to_dict(self) -> dict[str, float]:
        """The range as JSON-ready numbers."""
        return {"min": self.low, "max": self.high}
