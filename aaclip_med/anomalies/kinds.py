"""The registry of synthetic-anomaly kinds: name -> generator class (torch-free until a class is asked for).

A new kind is one module with a :class:`aaclip_med.anomalies.base.RandAnomaly` subclass and one
line in :data:`_REGISTRY`. The CLI's ``--help`` reads the names without importing torch; the
class is imported when :func:`generator_class` is first called for it.
"""

from __future__ import annotations

import importlib

__all__ = ["SYNTHETIC_KINDS", "DEFAULT_PROBABILITY", "parse_kinds", "unused_kind", "generator_class"]

# name -> "module:class". perlin: DRAEM (Zavrtanik et al., ICCV 2021); cutpaste: CutPaste (Li et al.,
# CVPR 2021); lesion: blobs with an intensity offset in the modality's own units (this package);
# scratch, hole, color_spot: surface defects of industrial benchmarks (this package's sample)
_REGISTRY = {
    "perlin": "aaclip_med.anomalies.perlin:RandPerlinAnomaly",
    "cutpaste": "aaclip_med.anomalies.cutpaste:RandCutPaste",
    "lesion": "aaclip_med.anomalies.lesion:RandLesion",
    "scratch": "aaclip_med.anomalies.surface:RandScratch",
    "hole": "aaclip_med.anomalies.surface:RandHole",
    "color_spot": "aaclip_med.anomalies.surface:RandColorSpot",
}
SYNTHETIC_KINDS = tuple(_REGISTRY)
# probability that a normal training sample becomes anomalous: DRAEM's 0.5 (half the batch stays
# normal, so the image-level head sees both labels in about equal numbers)
DEFAULT_PROBABILITY = 0.5
_VALIDATION_FIRST = "lesion"  # the held-out kind closest to a real medical finding


def parse_kinds(kinds: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"perlin,cutpaste"`` or a sequence -> a tuple of known kinds, in the order given, no repeats.

    Raises:
        ValueError: an empty list or an unknown name (the message lists the choices).
    """
    names = [k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if str(k).strip()]
    unknown = [k for k in names if k not in _REGISTRY]
    if unknown or not names:
        msg = f"unknown or no synthetic anomaly kind(s) {unknown or names!r}; choose from {', '.join(SYNTHETIC_KINDS)}"
        raise ValueError(msg)
    return tuple(dict.fromkeys(names))


def generator_class(kind: str) -> type:
    """The :class:`aaclip_med.anomalies.base.RandAnomaly` subclass registered as ``kind``."""
    module, name = _REGISTRY[parse_kinds([kind])[0]].split(":")
    return getattr(importlib.import_module(module), name)


def unused_kind(kinds: tuple[str, ...]) -> str | None:
    """A kind training did not use (lesion first, then the registry's order), or None."""
    for kind in (_VALIDATION_FIRST, *SYNTHETIC_KINDS):
        if kind not in kinds:
            return kind
    return None
