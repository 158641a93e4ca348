"""The names of the synthetic-anomaly generators (torch-free: the CLI's ``--help`` reads them)."""

from __future__ import annotations

__all__ = ["SYNTHETIC_KINDS", "DEFAULT_PROBABILITY", "parse_kinds", "unused_kind"]

# perlin: DRAEM (Zavrtanik et al., ICCV 2021); cutpaste: CutPaste (Li et al., CVPR 2021);
# lesion: blobs with an intensity offset in the modality's own units (this package)
SYNTHETIC_KINDS = ("perlin", "cutpaste", "lesion")
# probability that a normal training sample becomes anomalous: DRAEM's 0.5 (half the batch stays
# normal, so the image-level head sees both labels in about equal numbers)
DEFAULT_PROBABILITY = 0.5


def parse_kinds(kinds: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"perlin,cutpaste"`` or a sequence -> a tuple of known kinds, in the order given, no repeats.

    Raises:
        ValueError: an empty list or an unknown name (the message lists the choices).
    """
    names = [k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if str(k).strip()]
    unknown = [k for k in names if k not in SYNTHETIC_KINDS]
    if unknown or not names:
        msg = f"unknown or no synthetic anomaly kind(s) {unknown or names!r}; choose from {', '.join(SYNTHETIC_KINDS)}"
        raise ValueError(msg)
    return tuple(dict.fromkeys(names))


def unused_kind(kinds: tuple[str, ...]) -> str | None:
    """A generator kind training did not use (lesion first, then perlin, cutpaste), or None."""
    for kind in ("lesion", "perlin", "cutpaste"):
        if kind not in kinds:
            return kind
    return None
