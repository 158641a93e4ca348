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

from aaclip_med.keys import Domain

__all__ = ["Protocol", "MinMax", "paper_image_score"]


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


def paper_image_score(map_max: float, global_score: float, domain: str) -> float:
    """Image score of spec section 5 from already-normalised ``max(map)`` and ``s_g``.

    Args:
        map_max: normalised maximum of the anomaly map.
        global_score: normalised global score s_g.
        domain: ``industrial`` (mean of both) or ``medical`` (map maximum only).

    Raises:
        ValueError: for an unknown domain.
    """
    if domain == Domain.INDUSTRIAL:
        return 0.5 * float(map_max) + 0.5 * float(global_score)
    if domain == Domain.MEDICAL:
        return float(map_max)
    msg = f"unknown domain {domain!r}; expected one of {[d.value for d in Domain]}"
    raise ValueError(msg)
