"""Dictionary keys shared by transforms, datasets, engines and writers.

One enum, so a typo in a key is an AttributeError instead of a silent KeyError three modules away.
Standard library only: the CLI reads the domains without importing torch or MONAI.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["StrEnum", "Keys", "Domain", "DOMAINS"]


class StrEnum(str, Enum):
    """An enum whose members are their string values (``str(Keys.IMAGE) == "image"``), as MONAI's."""

    def __str__(self) -> str:
        return self.value


class Keys(StrEnum):
    """Keys of the per-sample dictionaries that flow through the pipeline."""

    IMAGE = "image"  # (C, H, W) MetaTensor, C=3 after preprocessing
    MASK = "mask"  # (1, H, W) ground-truth mask, {0, 1}
    LABEL = "label"  # image label, 0.0 normal / 1.0 anomalous
    CLASS_NAME = "class_name"
    IMAGE_PATH = "image_path"
    MASK_PATH = "mask_path"
    SLICE_INDEX = "slice_index"
    CASE_ID = "case_id"
    MODALITY = "modality"
    DOMAIN = "domain"
    PRED = "pred"  # anomaly map
    SCORE = "score"  # image-level anomaly score
    SYNTHETIC = "synthetic"  # generator that planted the sample's synthetic anomaly (absent: none)


class Domain(StrEnum):
    """Which smoothing kernel and image-score rule of spec section 5 apply."""

    MEDICAL = "medical"
    INDUSTRIAL = "industrial"


DOMAINS: tuple[str, ...] = tuple(domain.value for domain in Domain)  # ("medical", "industrial")
