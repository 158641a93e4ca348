"""Score calibration from normal reference images: deployment scores that need no test set.

The paper's benchmark protocol min-max normalises maps and scores per class over the whole test
set (spec section 5), which is impossible for one new patient. Instead, fit once on a set of
*normal* reference images (or volumes) of the class, acquired like the images to be scored:

- image level: every reference slice's raw image score is kept (sorted) with its mean and std;
- pixel level: mean, std and high quantiles (0.99, 0.999) of the raw map values, and their empirical
  distribution as a table of :data:`CDF_POINTS` quantiles (format version 2).

At inference, a raw score ``s`` becomes
- ``z = (s - mean) / std``: how many normal standard deviations above normal it is;
- ``normal_percentile = (k + 0.5) / (n + 1)`` where ``k`` of the ``n`` normal reference slices
  score at most ``s``: the fraction of normal slices at or below ``s``, pulled towards 0.5 by half
  a reference so that it stays inside (0, 1) and never claims certainty (with n = 99, a score
  above every normal slice gets 0.995);
and the pixel quantiles suggest a map threshold (e.g. the 0.999 normal quantile for a mask). A raw
map value ``v`` becomes a *normal-reference probability* ``P(normal map value <= v)`` in [0, 1]
(:meth:`ClassCalibration.map_probability`: the quantile table read as a piecewise-linear CDF): 0.5
is a typical normal voxel, 0.999 one that 99.9 % of normal voxels stay below. This is what a DICOM
Parametric Map with ``--pmap-values probability`` stores, so viewers that expect values in [0, 1]
(OHIF) show it as it is. Files of format version 1 have no table: they still give z-scores and
percentiles, and a probability map asks for a refit.

A calibration only means something for the scores it was fitted on: the same backbone, CLIP and
adapter weights, input size, modality preset, domain and class. These are stored with it and a
run with other settings is refused (:func:`check_calibration`, naming each difference) unless the
mismatch is explicitly allowed. Fewer than :data:`MIN_NORMAL_SLICES` normal reference slices fit
with a warning: the percentile then moves in steps of 1/(n+1) and the standard deviation is rough.

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

from aaclip_med.files import write_json_atomic
from aaclip_med.identity import SCORING_FIELDS, class_differences, differences

__all__ = [
    "ClassCalibration", "Calibration", "PixelStats", "save_calibration", "load_calibration", "check_calibration",
    "MIN_NORMAL_SLICES", "model_differences", "class_differences",
    "CDF_POINTS",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: pixel_cdf (the normal map values' quantile table) added
PIXEL_QUANTILES = (0.99, 0.999)
CDF_POINTS = 1001  # quantiles at 0, 0.001, ..., 1 of the normal map values (pixel_cdf)
_PIXELS_PER_MAP = 4096  # random pixels per reference map kept for the quantiles (bounded memory)
MIN_NORMAL_SLICES = 20  # fewer normal reference slices fit with a warning


@dataclass
class PixelStats:
    """Running statistics of normal map values (exact mean/std, quantiles from a fixed subsample)."""

    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    sample: list[float] = field(default_factory=list)

    def add(self, score_map: np.ndarray, rng: np.random.Generator | None) -> None:
        """Count ``score_map``'s values; ``rng`` None keeps no sample (mean and std only, constant memory)."""
        values = np.asarray(score_map, dtype=np.float64).ravel()
        self.count += values.size
        self.total += float(values.sum())
        self.total_sq += float(np.square(values).sum())
        if rng is None:
            return
        take = min(values.size, _PIXELS_PER_MAP)
        self.sample += values[rng.choice(values.size, take, replace=False)].tolist()

    def mean_std(self) -> tuple[float, float]:
        """Exact mean and (population) standard deviation of every value added."""
        mean = self.total / self.count
        return float(mean), float(np.sqrt(max(self.total_sq / self.count - mean**2, 0.0)))


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
    modality: str | None = None  # the preset the references were preprocessed with (None: not recorded)
    pixel_cdf: list[float] | None = None  # CDF_POINTS quantiles of normal map values (None: format 1 file)

    @classmethod
    def fit(cls, class_name: str, description: str, domain: str, image_scores, pixels: PixelStats,
            modality: str | None = None) -> ClassCalibration:
        """From the raw scores of >= 2 normal slices and their pixel statistics (warned under MIN_NORMAL_SLICES)."""
        scores = np.sort(np.asarray(image_scores, dtype=np.float64))
        if scores.size < 2:
            raise ValueError(f"Calibration of class {class_name!r} needs at least 2 normal images, got {scores.size}.")
        if not np.isfinite(scores).all():
            bad = int((~np.isfinite(scores)).sum())
            raise ValueError(f"Calibration of class {class_name!r}: {bad} of {scores.size} normal image score(s) are not "
                             "finite (NaN or inf); the network's output on those references is broken, so no "
                             "percentile or z-score could be trusted. Check the references and the weights.")
        if scores.size < MIN_NORMAL_SLICES:
            logger.warning("calibration of %r from only %d normal slice(s) (recommended: at least %d): its percentiles "
                           "move in steps of %.2f and its z-scores are rough", class_name, scores.size,
                           MIN_NORMAL_SLICES, 1 / (scores.size + 1))
        pixel_mean, pixel_std = pixels.mean_std()
        quantiles = {str(q): float(np.quantile(pixels.sample, q)) for q in PIXEL_QUANTILES}
        table = np.quantile(pixels.sample, np.linspace(0.0, 1.0, CDF_POINTS)).tolist()
        return cls(class_name, description, str(domain), scores.tolist(), float(scores.mean()),
                   float(scores.std(ddof=1)), pixel_mean, pixel_std, quantiles, modality, table)

    def z(self, score: float) -> float:
        """Standard score of a raw image score against the normal references."""
        return float((score - self.image_mean) / max(self.image_std, 1e-12))

    def percentile(self, score: float) -> float:
        """``(k + 0.5) / (n + 1)``: ``k`` of the ``n`` normal reference slices score at most ``score``; in (0, 1)."""
        rank = np.searchsorted(np.asarray(self.image_scores), score, side="right")
        return float((rank + 0.5) / (len(self.image_scores) + 1))

    def map_probability(self, values: np.ndarray) -> np.ndarray:
        """``P(normal map value <= v)`` of each raw map value: float32 in [0, 1], same shape.

        The quantile table is read as a piecewise-linear CDF (a value shared by several quantiles
        gets the highest of them); below every normal value 0, above every one 1.

        Raises:
            ValueError: the calibration has no quantile table (fitted by an older aaclip-med).
        """
        if not self.pixel_cdf:
            msg = (f"the calibration of class {self.class_name!r} has no table of normal map values (format 1, "
                   "written by an older aaclip-med), so it cannot turn maps into probabilities; fit it again with "
                   "--calibrate-normals, or write raw map values (--pmap-values raw)")
            raise ValueError(msg)
        table = np.asarray(self.pixel_cdf, dtype=np.float64)
        levels = np.linspace(0.0, 1.0, table.size)
        reversed_values, first_from_end = np.unique(table[::-1], return_index=True)
        highest_level = levels[table.size - 1 - first_from_end]
        mapped = np.interp(np.asarray(values, dtype=np.float64), reversed_values, highest_level, left=0.0, right=1.0)
        return mapped.astype(np.float32)


@dataclass
class Calibration:
    """Calibrations of several classes, keyed by class name."""

    classes: dict[str, ClassCalibration] = field(default_factory=dict)
    model: dict[str, object] = field(default_factory=dict)  # backbone / weights the scores came from

    def get(self, class_name: str) -> ClassCalibration | None:
        """The calibration of ``class_name``, or None."""
        return self.classes.get(class_name)

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "model": dict(self.model),
                "classes": {k: asdict(v) for k, v in self.classes.items()}}

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "calibration") -> Calibration:
        if not isinstance(data, Mapping) or "classes" not in data:
            raise ValueError(f"{source}: not an aaclip-med calibration (no 'classes'); fit one with calibrate_normals (--calibrate-normals).")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{source}: calibration format {data['format_version']} is newer than this aaclip-med reads.")
        try:
            classes = {k: ClassCalibration(**v) for k, v in data["classes"].items()}
        except TypeError as err:
            raise ValueError(f"{source}: malformed class entry ({err}).") from err
        return cls(classes, dict(data.get("model", {})))


def save_calibration(calibration: Calibration, path: str | os.PathLike) -> Path:
    """Write ``calibration`` as JSON (atomically)."""
    return write_json_atomic(path, calibration.to_dict())


def load_calibration(path: str | os.PathLike) -> Calibration:
    """Read a calibration JSON written by :func:`save_calibration`.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: it is not a calibration file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Calibration file {str(path)!r} does not exist; fit one with calibrate_normals (--calibrate-normals DIR).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}).") from err
    return Calibration.from_dict(data, str(path))


def model_differences(stored: Mapping, identity: Mapping, what: str = "calibration") -> tuple[list[str], list[str]]:
    """(differences, fields not recorded) between a stored identity and this run's, over
    :data:`~aaclip_med.identity.SCORING_FIELDS` (the network and the reference memory scores were
    combined with; a file that does not record a memory was fitted without one). ``what`` names
    the stored side in the messages."""
    found = differences(stored, identity, SCORING_FIELDS, what=what)
    return found.refused, found.unknown


def check_calibration(
    calibration: Calibration, identity: Mapping, class_name: str, modality: str | None = None,
    domain: str | None = None, allow_mismatch: bool = False,
) -> ClassCalibration:
    """The class calibration to apply, refused when it was fitted with other settings.

    Args:
        calibration: the loaded calibration.
        identity: this run's :func:`~aaclip_med.identity.scoring_identity`.
        class_name: the class of the cases it is applied to.
        modality, domain: the preset and domain of those cases (None: not checked).
        allow_mismatch: apply it anyway, with a warning naming the differences.

    Raises:
        ValueError: each difference named, with the way out.
    """
    found = calibration.get(class_name)
    if found is None and len(calibration.classes) == 1:
        found = next(iter(calibration.classes.values()))  # a single-class file: compared (and refused) below
    if found is None:
        msg = (f"the calibration has no class {class_name!r} (classes: {sorted(calibration.classes)}); fit one "
               "with --calibrate-normals and the same --class-name")
        raise ValueError(msg)
    differ, unknown = model_differences(calibration.model, identity)
    differ += class_differences(found, class_name, modality, domain)
    if differ and not allow_mismatch:
        # one line: a case failing on it is reported by its first line
        msg = (f"the calibration was fitted with other settings ({'; '.join(differ)}), so its z-scores and "
               "percentiles would mean nothing here; fit one with this run's settings (--calibrate-normals) or pass "
               "--allow-calibration-mismatch (allow_calibration_mismatch=True)")
        raise ValueError(msg)
    if differ:
        logger.warning("applying a calibration fitted with other settings (allowed): %s", "; ".join(differ))
    if unknown:
        logger.warning("the calibration does not record %s; it cannot be checked against this run", ", ".join(unknown))
    return found
