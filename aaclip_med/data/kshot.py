"""k-shot sampling of a manifest: k samples per class, half normal and half anomalous, seeded."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from aaclip_med.keys import Keys

from .errors import DataError

__all__ = ["sample_k_shot"]

logger = logging.getLogger(__name__)


def sample_k_shot(records: Sequence[Mapping], k: int, seed: int = 0) -> list[dict]:
    """Pick k records per class: k // 2 normal and k - k // 2 anomalous.

    Args:
        records: manifest records.
        k: samples per class (>= 1); an odd k gives the extra sample to the anomalous side.
        seed: seed of the draw.

    Returns:
        The chosen records, in manifest order.

    Raises:
        DataError: a class has too few normal or anomalous records.
    """
    if k < 1:
        msg = f"k must be >= 1, got {k}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for class_name in sorted({str(r[Keys.CLASS_NAME]) for r in records}):
        for label, count in ((0.0, k // 2), (1.0, k - k // 2)):
            pool = [n for n, r in enumerate(records) if str(r[Keys.CLASS_NAME]) == class_name and float(r[Keys.LABEL]) == label]
            if len(pool) < count:
                kind = "anomalous" if label else "normal"
                raise DataError(None, f"class {class_name!r} has {len(pool)} {kind} samples, {k}-shot needs {count}")
            chosen += rng.choice(pool, size=count, replace=False).tolist() if count else []
    logger.info("%d-shot sample (seed %d): %d records", k, seed, len(chosen))
    return [dict(records[n]) for n in sorted(chosen)]
