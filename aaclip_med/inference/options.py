"""The settings of an inference run, in one object the CLI, the Python API and the bundle all build.

:class:`InferenceOptions` holds every choice of :func:`aaclip_med.inference.run_inference` except
what is run (inputs or manifest), where to (the output folder) and with which network;
:class:`SliceOptions` says how volumes are cut. Both validate their values on creation, so a bad
value is refused before a model is built or a file is written.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aaclip_med.errors import ParameterError
from aaclip_med.inference.network import is_exported
from aaclip_med.keys import DOMAINS
from aaclip_med.memory.names import REFERENCE_SEARCHES
from aaclip_med.precision import INFERENCE_PRECISIONS
from aaclip_med.presets import AUTO, resolve_modality_name

__all__ = [
    "InferenceOptions",
    "SliceOptions",
    "DEFAULT_CLASS",
    "MIN_FOREGROUND",
    "PMAP_VALUES",
    "REFERENCE_SEARCHES",
    "SLICE_AXES",
    "check_threshold",
    "map_range",
]

DEFAULT_REFERENCE_WEIGHT = 0.5  # the memory and the zero-shot map count alike (docs/reference-memory.md)
DEFAULT_CLASS = "scan"  # class (and description) of inputs when neither is given: BMAD's medical prompt
MIN_FOREGROUND = 0.05  # default fraction of a volume slice that must be foreground to count in the case score
SLICE_AXES = ("acquisition", "axial", "coronal", "sagittal", 0, 1, 2)  # what SliceOptions.axis accepts
PMAP_VALUES = ("raw", "probability")  # what a DICOM Parametric Map stores (see InferenceOptions.pmap_values)


@dataclass(frozen=True)
class SliceOptions:
    """How a volume is cut into the 2D slices the network sees (2D sources are one slice).

    A slice's *foreground* is the fraction of its pixels above the background level: -500 HU
    (air) for CT presets, the volume's minimum for every other preset (MR, OCT: zero background).

    Attributes:
        axis: 0, 1, 2, "acquisition" (axis 2: a DICOM series' stacking axis), or "axial",
            "coronal", "sagittal" (the voxel axis closest to that world axis).
        start: first slice index.
        stop: one past the last slice index (None: to the end).
        min_foreground: slices with less foreground than this fraction do not count in the case
            score (their maps are still written); 0 counts every slice.
        skip_empty: do not even predict slices under ``min_foreground`` (their map is 0): faster
            on volumes with much background.
    """

    axis: int | str = "acquisition"
    start: int = 0
    stop: int | None = None
    min_foreground: float = MIN_FOREGROUND
    skip_empty: bool = False

    def __post_init__(self) -> None:
        if self.axis not in SLICE_AXES:
            raise ValueError(f"slice axis must be one of {list(SLICE_AXES)}, got {self.axis!r}")
        if self.start < 0 or (self.stop is not None and self.stop <= self.start):
            raise ValueError(f"slice range needs 0 <= start < stop, got start={self.start}, stop={self.stop}")
        if not (isinstance(self.min_foreground, (int, float)) and 0.0 <= self.min_foreground <= 1.0):
            raise ValueError(f"min_foreground is a fraction in [0, 1], got {self.min_foreground!r}")


def map_range(levels: int, logit_scale: float) -> tuple[float, float]:
    """(lowest, highest) value a raw anomaly map can take (spec section 5).

    Each level map is ``(S_A + 1 - S_N) / 2`` with ``S = logit_scale * cos``, so it lies in
    ``[(1 - 2 s) / 2, (1 + 2 s) / 2]``; the map is the sum of ``levels`` of them.
    """
    return levels * (1 - 2 * logit_scale) / 2, levels * (1 + 2 * logit_scale) / 2


@dataclass(frozen=True)
class InferenceOptions:
    """Every setting of an inference run (see :func:`aaclip_med.inference.run_inference`).

    Attributes:
        modality: preset name, or "auto" to pick one per source (rules in
            :mod:`aaclip_med.data.modality`; the choice is logged and recorded per case).
        domain: "medical" or "industrial"; None: from each source's preset.
        class_name: class of the inputs (picks the description and the calibration); default:
            the description when one is given, else "scan".
        description: text description of the inputs' class (overrides the registries).
        descriptions: class name -> description, tried before the shipped registries.
        threshold: raw map value at or above which a voxel is anomalous (mask, DICOM SEG).
        dicom: also write DICOM SEG / Parametric Map for DICOM sources.
        pmap_values: what the Parametric Map stores: "probability" (each raw value's normal-reference
            probability, in [0, 1], from the calibration's table of normal map values: viewers such
            as OHIF show it as it is) or "raw" (the raw map; its range is in the real-world value
            mapping, and viewers that expect [0, 1] do not scale it). None: "probability" when a
            calibration is applied, else "raw" (warned when DICOM outputs are written).
        calibration: a :class:`~aaclip_med.inference.calibration.Calibration` to apply.
        allow_calibration_mismatch: apply a calibration fitted with other settings (warned).
        references: a reference memory (``refs.safetensors`` path or a loaded
            :class:`~aaclip_med.memory.ReferenceBank`) combined with the zero-shot maps
            (docs/reference-memory.md); the maps are then in normal standard deviations.
        reference_weight: weight of the memory in the combined map, in [0, 1] (1 = memory alone);
            None: :data:`DEFAULT_REFERENCE_WEIGHT`. Given without ``references`` it is refused (it
            would change nothing, silently).
        reference_search: the memory's nearest-neighbour search, one of :data:`REFERENCE_SEARCHES`:
            "auto" (exact: the int8-screened search on x86 CPUs, else blocked products), "screen",
            "gemm", or "approximate" (a faiss index, the ``ann`` extra: faster, its maps a little
            above the exact ones where it misses a nearest neighbour; recorded in run.json).
            Other than "auto" without ``references`` it is refused.
        slices: how volumes are cut (:class:`SliceOptions`).
        precision: "auto", "fp32", "bf16" or "fp16" (see :mod:`aaclip_med.precision`).
        batch_size: slices per forward pass.
        workers: DataLoader workers loading cases ahead.
        device: torch device; None: cuda if available, else cpu.
        weights: the adapters file, recorded with its sha256 in run.json.
        progress: progress bars (shown only on a terminal).
        force: recompute every case in an output folder whose finished work has other settings.
    """

    modality: str = AUTO
    domain: str | None = None
    class_name: str | None = None
    description: str | None = None
    descriptions: Mapping[str, str] | None = None
    threshold: float | None = None
    dicom: bool = False
    pmap_values: str | None = None
    calibration: Any = None
    allow_calibration_mismatch: bool = False
    references: Any = None
    reference_weight: float | None = None
    reference_search: str = "auto"
    slices: SliceOptions = field(default_factory=SliceOptions)
    precision: str = "auto"
    batch_size: int = 8
    workers: int = 0
    device: str | None = None
    weights: str | None = None
    progress: bool = True
    force: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "modality", resolve_modality_name(self.modality or AUTO, allow_auto=True))
        if self.domain is not None and str(self.domain) not in DOMAINS:
            raise ValueError(f"domain must be one of {list(DOMAINS)} or None, got {self.domain!r}")
        if self.precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"Unknown precision {self.precision!r}; choose one of {list(INFERENCE_PRECISIONS)}.")
        if self.batch_size < 1 or self.workers < 0:
            raise ValueError(f"need batch_size >= 1 and workers >= 0, got {self.batch_size} and {self.workers}")
        if isinstance(self.slices, Mapping):
            object.__setattr__(self, "slices", SliceOptions(**self.slices))
        if self.threshold is not None:
            check_threshold(self.threshold)
        weight = self.reference_weight
        if weight is not None and not (isinstance(weight, (int, float)) and 0.0 <= weight <= 1.0):
            raise ValueError(f"reference_weight is in [0, 1] (1 = the memory alone), got {weight!r}")
        if weight is not None and self.references is None:
            raise ValueError(f"reference_weight={weight:g} is given without references: it weighs a reference memory "
                             "in the maps, so without one it would change nothing; give references as well, or drop it")
        self._check_reference_search()
        if self.pmap_values not in (None, *PMAP_VALUES):
            raise ValueError(f"pmap_values must be one of {list(PMAP_VALUES)} or None, got {self.pmap_values!r}")

    def _check_reference_search(self) -> None:
        search = self.reference_search
        if search not in REFERENCE_SEARCHES:
            raise ParameterError("reference_search", search, f"is not a reference search; choose one of {list(REFERENCE_SEARCHES)}")
        if search != "auto" and self.references is None:
            raise ParameterError("reference_search", search, "is given without {references}: it searches a reference "
                                 "memory, so without one it would change nothing; give {references} FILE, or drop it")
        if search == "approximate" and importlib.util.find_spec("faiss") is None:
            raise ParameterError("reference_search", search, "needs faiss, which is not installed: pip install "
                                 "'aaclip-med[ann]' (faiss-cpu), or use an exact search (auto, screen, gemm)")

    def resolved_pmap_values(self, calibration: Any) -> str:
        """``pmap_values``, or its default with ``calibration`` (the one the run applies, or None).

        Raises:
            ValueError: "probability" without a calibration, or with one that has no table of
                normal map values (fitted by an older aaclip-med).
        """
        values = self.pmap_values or ("probability" if calibration is not None else "raw")
        if values == "probability" and calibration is None:
            raise ParameterError("pmap_values", values, "needs a calibration ({calibration} FILE or "
                                 "{calibrate_normals} DIR): the probabilities are against its normal references")
        if values == "probability":
            old = sorted(name for name, fitted in calibration.classes.items() if not fitted.pixel_cdf)
            if old:
                msg = (f"the calibration's class(es) {old} have no table of normal map values (format 1, written by an "
                       "older aaclip-med), so the Parametric Map cannot hold probabilities; fit the calibration again "
                       "with {calibrate_normals}, or pass {pmap_values}=raw")
                raise ParameterError("pmap_values", values, msg)
        return values

    @property
    def resolved_reference_weight(self) -> float:
        """``reference_weight``, or :data:`DEFAULT_REFERENCE_WEIGHT` when it is not given."""
        return DEFAULT_REFERENCE_WEIGHT if self.reference_weight is None else float(self.reference_weight)

    @property
    def resolved_class(self) -> str:
        """The class name recorded and used for calibration (see ``class_name``)."""
        return self.class_name or self.description or DEFAULT_CLASS

    def replace(self, **changes: Any) -> InferenceOptions:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def build(cls, options: InferenceOptions | None = None, **changes: Any) -> InferenceOptions:
        """``options`` (or the defaults) with keyword ``changes``; unknown keywords name the valid ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown inference option(s) {unknown}; valid: {sorted(known)}")
        changes = {k: v for k, v in changes.items() if not (k == "modality" and v is None)}
        return (options or cls()).replace(**changes) if changes else (options or cls())

    def check_model(self, model: Any) -> None:
        """Refuse settings that cannot work with ``model`` (a threshold outside its map range; for an
        exported graph, settings its card differs from)."""
        if is_exported(model):
            model.check_options(self)
        config = getattr(model, "config", None)
        if self.references is not None:  # combined maps are in normal standard deviations, not raw units
            return
        if self.threshold is None or config is None or not getattr(config, "levels", None):
            return
        low, high = map_range(len(config.levels), float(config.logit_scale))
        if not low < self.threshold <= high:
            msg = (f"threshold {self.threshold:g} is outside the range raw maps of this network can take "
                   f"({low:g} .. {high:g}): every mask would be {'empty' if self.threshold > high else 'full'}. "
                   "Pick a value inside it, e.g. a calibration's 0.999 normal quantile.")
            raise ValueError(msg)


def check_threshold(value: float) -> float:
    """A finite float, or ValueError naming the value (NaN and infinities make empty or full masks)."""
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"threshold must be a number, got {value!r}") from err
    if not math.isfinite(number):
        raise ValueError(f"threshold must be a finite number, got {value!r}: it would make every mask empty or full")
    return number
