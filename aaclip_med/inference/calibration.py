"""Score calibration from normal reference images: deployment scores that need no test set.

The paper's benchmark protocol min-max normalises maps and scores per class over the whole test
set (spec section 5), which is impossible for one new patient. Instead, fit once on a set of
*normal* reference images (or volumes) of the class, acquired like the images to be scored:

- image level: every reference slice's raw image score is kept (sorted) with its mean and std;
- pixel level: mean, std and high quantiles (0.99, 0.999) of the raw map values.

At inference, a raw score ``s`` becomes
- ``z = (s - mean) / std``: how many normal standard deviations above normal it is;
- ``normal_percentile = (#{normal scores <= s} + 0.5) / (n + 1)``: the fraction of normal
  references scoring at most ``s``, kept inside (0, 1) so it never claims certainty. A value of
  0.99 means "higher than 99 % of normal slices";
and the pixel quantiles suggest a map threshold (e.g. the 0.999 normal quantile for a mask).

The case score of a volume is the max over its slices, which is higher than a typical slice even
for a normal case; its percentile is against normal *slices*, so read it as "the most anomalous
slice compared with normal slices". Calibrations are stored per class in a JSON file
(``save_calibration``), or inside an adapter checkpoint via
``save_adapters(model, path, extra={"calibration": calibration.to_dict()})``; ``load_adapters``
then exposes it as ``model.checkpoint_extra["calibration"]`` and inference picks it up.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from aaclip_med.files import write_text_atomic

__all__ = ["ClassCalibration", "Calibration", "PixelStats", "save_calibration", "load_calibration"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
PIXEL_QUANTILES = (0.99, 0.999)
_PIXELS_PER_MAP = 4096  # random pixels per reference map kept for the quantiles (bounded memory)


@dataclass
class PixelStats:
    """Running statistics of normal map values (exact mean/std, quantiles from a fixed subsample)."""

    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    sample: list[float] = field(default_factory=list)

    def add(self, score_map: np.ndarray, rng: np.random.Generator) -> None:
        values = np.asarray(score_map, dtype=np.float64).ravel()
        self.count += values.size
        self.total += float(values.sum())
        self.total_sq += float(np.square(values).sum())
        take = min(values.size, _PIXELS_PER_MAP)
        self.sample += values[rng.choice(values.size, take, replace=False)].tolist()


@dataclass
class ClassCalibration:
    """Normal-reference statistics of one class (raw scores of spec section 5)."""

    class_name: str
    description: str
    domain: str
    image_scores: list[float]  # sorted raw image scores of the normal reference slices
    image_mean: float
    image_std: float
    pixel_mean: float
    pixel_std: float
    pixel_quantiles: dict[str, float]  # "0.99" -> value

    @classmethod
    def fit(cls, class_name: str, description: str, domain: str, image_scores, pixels: PixelStats) -> ClassCalibration:
        """From the raw scores of >= 2 normal slices and their pixel statistics."""
        scores = np.sort(np.asarray(image_scores, dtype=np.float64))
        if scores.size < 2:
            raise ValueError(f"Calibration of class {class_name!r} needs at least 2 normal images, got {scores.size}.")
        pixel_mean = pixels.total / pixels.count
        pixel_var = max(pixels.total_sq / pixels.count - pixel_mean**2, 0.0)
        quantiles = {str(q): float(np.quantile(pixels.sample, q)) for q in PIXEL_QUANTILES}
        return cls(class_name, description, str(domain), scores.tolist(), float(scores.mean()),
                   float(scores.std(ddof=1)), float(pixel_mean), float(np.sqrt(pixel_var)), quantiles)

    def z(self, score: float) -> float:
        """Standard score of a raw image score against the normal references."""
        return float((score - self.image_mean) / max(self.image_std, 1e-12))

    def percentile(self, score: float) -> float:
        """Fraction of normal references scoring at most ``score``, in (0, 1)."""
        rank = np.searchsorted(np.asarray(self.image_scores), score, side="right")
        return float((rank + 0.5) / (len(self.image_scores) + 1))


@dataclass
class Calibration:
    """Calibrations of several classes, keyed by class name."""

    classes: dict[str, ClassCalibration] = field(default_factory=dict)
    model: dict[str, object] = field(default_factory=dict)  # backbone / weights the scores came from

    def get(self, class_name: str) -> ClassCalibration | None:
        """The class's calibration; with a single class stored, that one (logged) for any name."""
        if class_name in self.classes:
            return self.classes[class_name]
        if len(self.classes) == 1:
            only = next(iter(self.classes.values()))
            logger.info("calibration has only class %r; using it for %r", only.class_name, class_name)
            return only
        return None

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "model": dict(self.model),
                "classes": {k: asdict(v) for k, v in self.classes.items()}}

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "calibration") -> Calibration:
        if not isinstance(data, Mapping) or "classes" not in data:
            raise ValueError(f"{source}: not an aaclip-med calibration (no 'classes'); fit one with --calibrate-normals.")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{source}: calibration format {data['format_version']} is newer than this aaclip-med reads.")
        try:
            classes = {k: ClassCalibration(**v) for k, v in data["classes"].items()}
        except TypeError as err:
            raise ValueError(f"{source}: malformed class entry ({err}).") from err
        return cls(classes, dict(data.get("model", {})))


def save_calibration(calibration: Calibration, path: str | os.PathLike) -> Path:
    """Write ``calibration`` as JSON (atomically)."""
    return write_text_atomic(path, json.dumps(calibration.to_dict(), indent=2) + "\n")


def load_calibration(path: str | os.PathLike) -> Calibration:
    """Read a calibration JSON written by :func:`save_calibration`.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: it is not a calibration file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Calibration file {str(path)!r} does not exist; fit one with --calibrate-normals DIR.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}).") from err
    return Calibration.from_dict(data, str(path))
