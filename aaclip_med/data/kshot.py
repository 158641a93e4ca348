"""k-shot sampling of a manifest: k samples per class, half normal and half anomalous, seeded.

A class whose records all carry one label (every polyp image is anomalous; the normal-only train
splits of VisA, MVTec or BMAD hold no anomaly) gets its k samples from that label alone: k-shot
means k images of the class, split evenly between the labels the class has.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from aaclip_med.keys import Keys

from .errors import DataError

__all__ = ["sample_k_shot"]

logger = logging.getLogger(__name__)


def _label_counts(pools: dict[float, list[int]], k: int) -> dict[float, int]:
    """How many samples of each label: k // 2 normal and k - k // 2 anomalous, or all k of the one label."""
    present = [label for label, pool in pools.items() if pool]
    if len(present) == 1:
        return {present[0]: k}
    return {0.0: k // 2, 1.0: k - k // 2}


def sample_k_shot(records: Sequence[Mapping], k: int, seed: int = 0) -> list[dict]:
    """Pick k records per class: k // 2 normal and k - k // 2 anomalous.

    A class with a single label (all anomalous, or all normal) gets all k from that label.

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
        members = [n for n, r in enumerate(records) if str(r[Keys.CLASS_NAME]) == class_name]
        pools = {label: [n for n in members if float(records[n][Keys.LABEL]) == label] for label in (0.0, 1.0)}
        counts = _label_counts(pools, k)
        if len(counts) == 1:
            kind = "anomalous" if 1.0 in counts else "normal"
            logger.info("class %r has %s samples only: its %d-shot sample is %d %s images", class_name, kind, k, k, kind)
        for label, count in counts.items():
            if len(pools[label]) < count:
                kind = "anomalous" if label else "normal"
                raise DataError(None, f"class {class_name!r} has {len(pools[label])} {kind} samples, {k}-shot needs {count}")
            chosen += rng.choice(pools[label], size=count, replace=False).tolist() if count else []
    logger.info("%d-shot sample (seed %d): %d records", k, seed, len(chosen))
    return [dict(records[n]) for n in sorted(chosen)]
