"""The image-score rule of AA-CLIP (spec section 5), one place for inference and evaluation.

Industrial images: ``0.5 * max(map) + 0.5 * s_g`` (the map's peak and the global score count
alike). Medical images: ``max(map)`` only. Inference applies it to raw values; the paper's
benchmark protocol applies it after the per-class min-max normalisation of both terms.
Works on Python floats, NumPy arrays and torch tensors alike (arithmetic only).
"""

from __future__ import annotations

from typing import TypeVar

from aaclip_med.keys import Domain

__all__ = ["combine_image_score"]

T = TypeVar("T")


def combine_image_score(map_max: T, global_score: T, domain: str) -> T:
    """Image score from the map maximum and the global score ``s_g`` under ``domain``'s rule.

    Raises:
        ValueError: for an unknown domain (the message lists the two).
    """
    if domain == Domain.INDUSTRIAL:
        return 0.5 * map_max + 0.5 * global_score
    if domain == Domain.MEDICAL:
        return map_max
    raise ValueError(f"Unknown domain {domain!r}; use 'medical' or 'industrial'.")
