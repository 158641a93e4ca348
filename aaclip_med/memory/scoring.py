"""Scoring with a reference memory, and the documented rule that combines it with the zero-shot map.

Per level ``l`` and patch ``p``: ``m_l(p) = 1 - max_j cos(f_l(p), bank_l[j])``, the few-shot rule
of MVFA-AD and AnomalyCLIP (features are L2-normalised, so the cosine is a dot product). The level
maps are smoothed, upsampled and summed exactly as the zero-shot maps are
(:func:`aaclip_med.model.smoothing.level_maps_to_map`), giving the memory map ``M``.

Raw zero-shot values ``Z`` (a sum of four ``(S_A + 1 - S_N) / 2`` maps) and memory distances are on
different scales, so a plain weighted sum would let one of them decide alone. Each is therefore
standardised by its mean and std over the reference images themselves, measured when the memory
was built and stored in the file::

    map = (1 - w) * (Z - mean_Z) / std_Z + w * (M - mean_M) / std_M       (w = --reference-weight)

so the written map is in "normal standard deviations": about 0 on normal tissue, large where either
source sees something unlike the references. ``w = 1`` is the memory alone, ``w = 0`` the zero-shot
map alone (both standardised). The image score follows the package's one rule
(:func:`aaclip_med.scoring.combine_image_score`) on the combined map's maximum and the global score
standardised the same way.

The nearest-neighbour search (:mod:`aaclip_med.memory.search`) is exact and never writes the
full similarity matrix: on x86 CPUs an int8 screen with a proven error bound, then float32 on the
few rows it cannot rule out (the float32 maximum over the stored float16 features); elsewhere
blocked matrix products with a running maximum in the predictor's precision. An approximate search
(a faiss index, float32 on the stored features) is there when asked for, never by default.
"""

from __future__ import annotations

import torch

from aaclip_med.memory.bank import ClassMemory
from aaclip_med.memory.search import ApproximateBank, ScreenedBank, max_cosine, resolve_search
from aaclip_med.model import Prediction
from aaclip_med.model.smoothing import level_maps_to_map
from aaclip_med.precision import precision_dtype
from aaclip_med.scoring import combine_image_score

__all__ = ["ReferenceScorer", "max_cosine", "scoring_dtype", "search_dtype", "standardise"]


def scoring_dtype(precision: str) -> torch.dtype:
    """The dtype of the similarity products under a predictor's resolved precision (bf16/fp16 or fp32)."""
    return precision_dtype(precision) if precision in ("bf16", "fp16") else torch.float32


def search_dtype(precision: str, device: torch.device | str, search: str = "auto") -> torch.dtype:
    """The arithmetic the memory's maxima come out in at inference on ``device``: float32 where the
    screened or the approximate search runs (both score in float32), else :func:`scoring_dtype`. The
    builder measures the references' statistics in the same arithmetic, so the stored statistics and
    the scores agree."""
    return torch.float32 if resolve_search(search, device) in ("screen", "approximate") else scoring_dtype(precision)


def standardise(values: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """``(values - mean) / std`` with a floor on ``std`` (a constant reference statistic stays finite)."""
    return (values - mean) / max(float(std), 1e-6)


class ReferenceScorer:
    """One class memory ready to score: its banks prepared for the search on the device.

    Args:
        memory: the class memory (from a loaded :class:`~aaclip_med.memory.bank.ReferenceBank`).
        weight: ``w`` of the combination rule, in [0, 1].
        device: where the predictor runs.
        precision: the predictor's resolved precision (the dtype of the ``gemm`` search: bf16/fp16
            in that dtype, else fp32; the ``screen`` is float32-exact whatever it is).
        search: ``auto``, ``screen``, ``gemm`` or ``approximate`` (:data:`aaclip_med.memory.names.REFERENCE_SEARCHES`;
            ``approximate`` builds a faiss index per level here, once).
    """

    def __init__(self, memory: ClassMemory, weight: float, device: torch.device | str = "cpu",
                 precision: str = "fp32", search: str = "auto") -> None:
        if not 0.0 <= float(weight) <= 1.0:
            raise ValueError(f"reference weight must be in [0, 1] (1 = memory alone), got {weight!r}")
        self.memory, self.weight, self.search = memory, float(weight), resolve_search(search, device)
        if self.search == "screen":
            self.banks = [ScreenedBank(level.to("cpu")) for level in memory.levels]
        elif self.search == "approximate":
            self.banks = [ApproximateBank(level) for level in memory.levels]
        else:
            dtype = scoring_dtype(precision)
            self.banks = [level.to(device=device, dtype=dtype).contiguous() for level in memory.levels]

    def max_cosine(self, level: int, queries: torch.Tensor) -> torch.Tensor:
        """(Q,) float32 largest cosine of (Q, D) ``queries`` to the bank of ``level``."""
        bank = self.banks[level]
        if isinstance(bank, (ScreenedBank, ApproximateBank)):
            return bank.max_cosine(queries).to(queries.device)
        return max_cosine(queries, bank)

    def distances(self, levels: list[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        """Per-level memory distances on the patch grid.

        Args:
            levels: per level (B, L, D) normalised patch features (``ImageFeatures.levels``).
            grid: (gh, gw) with gh * gw = L.

        Returns:
            (B, n_levels, gh, gw) float32, ``1 - max cos``.
        """
        if len(levels) != len(self.banks):
            raise ValueError(f"the reference memory has {len(self.banks)} levels, the network {len(levels)}")
        maps = []
        for index, feats in enumerate(levels):
            b, length, width = feats.shape
            best = self.max_cosine(index, feats.reshape(b * length, width))  # (B*L,)
            maps.append(1.0 - best.view(b, *grid))
        return torch.stack(maps, dim=1)

    def memory_map(self, levels: list[torch.Tensor], grid: tuple[int, int], domain: str,
                   size: tuple[int, int]) -> torch.Tensor:
        """(B, H, W) raw memory map ``M``: level distances smoothed and upsampled as the zero-shot maps."""
        return level_maps_to_map(self.distances(levels, grid), domain, size, sum_first=True)

    def combine(self, zero_shot: Prediction, levels: list[torch.Tensor], grid: tuple[int, int],
                domain: str) -> Prediction:
        """The combined prediction (module docstring); ``global_score`` stays the raw ``s_g``."""
        stats = self.memory.stats
        size = tuple(zero_shot.anomaly_map.shape[-2:])
        memory = self.memory_map(levels, grid, domain, size)
        combined = (1.0 - self.weight) * standardise(zero_shot.anomaly_map.float(), stats["zero_shot_mean"],
                                                     stats["zero_shot_std"])
        combined = combined + self.weight * standardise(memory, stats["memory_mean"], stats["memory_std"])
        global_std = standardise(zero_shot.global_score.float(), stats["global_mean"], stats["global_std"])
        map_max = combined.flatten(1).amax(dim=1)
        score = combine_image_score(map_max, global_std, domain)
        return Prediction(anomaly_map=combined, image_score=score, global_score=zero_shot.global_score, map_max=map_max)
