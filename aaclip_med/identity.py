"""What made a result: the one list of the fields that identify a network and a run's outputs, and the one comparison.

Every stored record of this package says what produced it: ``run.json`` beside inference outputs,
a calibration file, a reference memory's header, an exported graph's ``card.json``. Every check of
such a record against a new run (resume, calibration, reference memory, exported graph, bundle)
compares the same fields through :func:`differences`, so a setting that changes a result cannot be
compared in one place and forgotten in another.

Fields come in three groups:

- :data:`NETWORK_FIELDS`: what the network computes with (backbone, input size, CLIP weights,
  adapter weights and the adapters' own tensors, so two untrained networks of different seeds are
  two networks);
- :data:`OUTPUT_FIELDS`: the network plus every setting that changes what a run writes (preset,
  domain, precision, threshold, DICOM values, calibration, class and description, slicing, the
  reference memory and its weight, the engine that ran an exported graph);
- fields of :data:`HARMLESS_FIELDS`: paths and names whose content is pinned by a hash among the
  fields above (the same weights file moved to another folder). A difference there is named in a
  warning; a resume goes on.

A field that a record written by an older version of the package does not hold is *not recorded*:
it is named in a warning (it cannot be checked) instead of refusing work that may well match.

This module imports no torch: the CLI, the bundle and tests read it without building a network.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from aaclip_med.files import json_safe

__all__ = [
    "IDENTITY_VERSION",
    "RANDOM_WEIGHT_TAGS",
    "NETWORK_FIELDS",
    "NETWORK_RECORD_FIELDS",
    "OUTPUT_FIELDS",
    "HARMLESS_FIELDS",
    "MEMORY_FIELDS",
    "GRAPH_FIELDS",
    "SCORING_FIELDS",
    "REFERENCES_FIELD",
    "Field",
    "Differences",
    "is_random_weights",
    "network_record",
    "network_values",
    "clip_weights_file",
    "adapters_file",
    "network_identity",
    "scoring_identity",
    "memory_identity",
    "differences",
    "class_differences",
    "digest",
]

# 2: adapter_tensors_sha256 (the adapters' tensors), references in every output comparison, the engine of a graph
IDENTITY_VERSION = 2

# what ``pretrained`` says when the CLIP tower is randomly initialised (tests, smoke runs)
RANDOM_WEIGHT_TAGS = frozenset({"", "none", "random", "random_init", "random-init"})


def is_random_weights(pretrained: object) -> bool:
    """True when ``pretrained`` names no CLIP weights (None or one of :data:`RANDOM_WEIGHT_TAGS`)."""
    return pretrained is None or (isinstance(pretrained, str) and pretrained.strip().lower() in RANDOM_WEIGHT_TAGS)


@dataclass(frozen=True)
class Field:
    """One field of a stored record.

    Attributes:
        name: its key in the record.
        meaning: what it says, for docs and messages.
        since: the :data:`IDENTITY_VERSION` that first recorded it; an older record without it is
            "not recorded" (warned), a newer one without it means "none" (e.g. no reference memory).
        required: every record of a network holds it, so a record without it is "not recorded"
            whatever its version (a hand-written or foreign file).
    """

    name: str
    meaning: str
    since: int = 1
    required: bool = False


# What the maps depend on, compared wherever features, scores or graphs are reused.
NETWORK_FIELDS: tuple[Field, ...] = (
    Field("backbone", "open_clip model name", required=True),
    Field("image_size", "input side in pixels", required=True),
    Field("pretrained", "CLIP weights: their file's sha256, else the open_clip tag or 'random'", required=True),
    Field("weights_sha256", "sha256 of the adapters file (None: untrained adapters)", required=True),
    Field("adapter_tensors_sha256", "sha256 of the adapters' tensors as run (untrained ones differ by seed)", since=2,
          required=True),
)

# What run_record writes of the network (the fields above before normalisation, plus paths for people).
NETWORK_RECORD_FIELDS: tuple[str, ...] = (
    "backbone", "image_size", "pretrained", "pretrained_sha256", "random_weights", "weights", "weights_sha256",
    "adapter_tensors_sha256",
)
# The names a weight file's path and hash had in older or hand-written records (read, never written).
_CLIP_FILE_NAMES = (("pretrained", "pretrained_sha256"), ("backbone_weights", "backbone_weights_sha256"))
_ADAPTERS_FILE_NAMES = (("weights", "weights_sha256"), ("adapters", "adapters_sha256"))

# The reference memory a result was combined with ({sha256, weight}; absent: none).
REFERENCES_FIELD = Field("references", "reference memory file's sha256 and its weight (absent: none)")

# What scores depend on: the network, and the reference memory they were combined with (a calibration's identity).
SCORING_FIELDS: tuple[Field, ...] = (*NETWORK_FIELDS, REFERENCES_FIELD)

# What a reference memory's features depend on: the network, and the axis volumes were cut along.
MEMORY_FIELDS: tuple[Field, ...] = (*NETWORK_FIELDS, Field("slice_axis", "the axis volumes were cut along"))

# What an exported graph fixes (a cached graph is found by their digest and used only when they all agree).
GRAPH_FIELDS: tuple[Field, ...] = (
    *NETWORK_FIELDS,
    Field("class_name", "class the graph scores"),
    Field("description", "class description of the anchors folded into the graph"),
    Field("domain", "medical or industrial (smoothing, image score)"),
    Field("preset", "modality preset the graph was exported for"),
    Field("levels", "the layers the maps are taken from"),
    Field("logit_scale", "scale of the anchors' cosines"),
    Field("format", "the graph's format"),
    Field("precision", "the graph's arithmetic"),
    Field("opset", "ONNX opset"),
    Field("versions", "versions of the packages that wrote the graph"),
)

# Everything that changes what an inference run writes (not: batch size, workers, device, world size, dates).
OUTPUT_FIELDS: tuple[Field, ...] = (
    *NETWORK_FIELDS,
    Field("modality", "modality preset"),
    Field("domain", "medical or industrial (smoothing, image score)"),
    Field("precision", "arithmetic of the forward pass"),
    Field("threshold", "raw map value of the binary mask / SEG"),
    Field("dicom", "DICOM SEG and Parametric Map written"),
    Field("pmap_values", "what the Parametric Map stores (probability or raw)"),
    Field("calibration", "the calibration applied"),
    Field("class_name", "class of the inputs"),
    Field("description", "class description of the text anchors"),
    Field("descriptions", "class -> description of a manifest run"),
    Field("slices", "slicing of volumes"),
    Field("manifest_sha256", "sha256 of the manifest of a manifest run"),
    REFERENCES_FIELD,
    Field("engine", "what ran the network: torch, or an exported graph's runtime, format and precision", since=2),
)

# Paths and names whose content a hash above pins: differing, they are warned about, never refused.
HARMLESS_FIELDS: tuple[Field, ...] = (
    Field("weights", "path of the adapters file (its sha256 is compared)"),
    Field("references_path", "path of the reference memory (its sha256 is compared)"),
    Field("manifest", "path of the manifest (its sha256 is compared)"),
    Field("dataset_root", "folder the manifest's paths are read from"),
    Field("exported_model", "folder of the exported graph (its engine is compared)"),
)


class Differences(NamedTuple):
    """The outcome of :func:`differences`, one line per field (or part of one).

    Attributes:
        refused: fields that change the result: the stored work and this run's cannot be mixed.
        warned: harmless fields that differ (paths of the same content).
        unknown: fields the stored record does not hold (written by an older version).
    """

    refused: list[str]
    warned: list[str]
    unknown: list[str]

    def __bool__(self) -> bool:
        return bool(self.refused)


def network_values(*, backbone: str | None, image_size: int | None, pretrained: str | None,
                   pretrained_sha256: str | None, weights: str | None, weights_sha256: str | None,
                   adapter_tensors_sha256: str | None) -> dict:
    """The network part of a run record (:data:`NETWORK_RECORD_FIELDS`), the one place its layout is written."""
    return {
        "identity_version": IDENTITY_VERSION,
        "backbone": backbone,
        "image_size": image_size,
        "pretrained": pretrained,
        "pretrained_sha256": pretrained_sha256,
        "random_weights": is_random_weights(pretrained),
        "weights": weights,
        "weights_sha256": weights_sha256,
        "adapter_tensors_sha256": adapter_tensors_sha256,
    }


def _file(record: Mapping, names: tuple[tuple[str, str], ...]) -> tuple[object, object]:
    for path_key, hash_key in names:
        if path_key in record:
            value = record[path_key]
            if isinstance(value, Mapping):  # {"file" | "path", "sha256"} of hand-written records
                return value.get("file") or value.get("path"), value.get("sha256")
            return value, record.get(hash_key)
    return None, None


def clip_weights_file(record: Mapping) -> tuple[object, object]:
    """(path or tag, sha256) of the CLIP weights a record names, under any name it has had ((None, None): none)."""
    return _file(record, _CLIP_FILE_NAMES)


def adapters_file(record: Mapping) -> tuple[object, object]:
    """(path, sha256) of the adapters file a record names, under any name it has had ((None, None): none)."""
    return _file(record, _ADAPTERS_FILE_NAMES)


def network_record(record: Mapping) -> dict:
    """The :data:`NETWORK_RECORD_FIELDS` of a run record or card identity (missing ones left out)."""
    return {key: record[key] for key in NETWORK_RECORD_FIELDS if key in record}


def network_identity(record: Mapping) -> dict:
    """The compared network fields of a record: the CLIP weights by their file's sha256 when they are a file.

    The same file under another path is the same weights; a tag or 'random' stays as it is.
    Fields the record does not hold stay out (so an older record reads as "not recorded").
    """
    identity = {f.name: record[f.name] for f in NETWORK_FIELDS if f.name in record}
    if record.get("pretrained_sha256"):
        identity["pretrained"] = f"sha256:{record['pretrained_sha256']}"
    elif str(record.get("pretrained", "")).startswith("sha256:"):
        identity["pretrained"] = record["pretrained"]
    return identity


def scoring_identity(record: Mapping) -> dict:
    """What a calibration records and is compared on (:data:`SCORING_FIELDS`): the network, and the
    reference memory ({sha256, weight}) when the run combined one."""
    identity = {"identity_version": IDENTITY_VERSION} | network_identity(record)
    if record.get("references"):
        identity["references"] = dict(record["references"])
    return identity


def memory_identity(record: Mapping, slice_axis: object) -> dict:
    """What a reference memory's header records and is compared on (:data:`MEMORY_FIELDS`)."""
    return {"identity_version": IDENTITY_VERSION} | network_identity(record) | {"slice_axis": slice_axis}


def _normalised(record: Mapping) -> dict:
    """``record`` with the network fields compared as :func:`network_identity` gives them."""
    return dict(record) | network_identity(record)


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _differing(name: str, old: object, new: object, what: str) -> list[str]:
    """Lines for the parts of two values that differ: inside values made of fields or items (slices,
    descriptions, references) the differing part is named, so two long values that share a beginning
    are never shown as the same truncated text."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new), key=str)
                for line in _differing(f"{name}.{key}", old.get(key), new.get(key), what)]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for n, (a, b) in enumerate(zip(old, new)) for line in _differing(f"{name}[{n}]", a, b, what)]
    return [f"{name}: {what} {_show(old)}, this run {_show(new)}"]


def differences(stored: Mapping, run: Mapping, fields: Iterable[Field] = OUTPUT_FIELDS, *,
                what: str = "stored", harmless: Iterable[Field] = ()) -> Differences:
    """Compare a stored record with this run's, field by field.

    Args:
        stored: the record read back (run.json, a calibration's or memory's ``model``, a card's identity).
        run: this run's record of the same kind.
        fields: the fields that must agree (:data:`OUTPUT_FIELDS`, :data:`NETWORK_FIELDS`, ...).
        what: how the stored side is named in the lines ("finished work", "calibration", ...).
        harmless: fields that may differ with a warning (:data:`HARMLESS_FIELDS`).

    Returns:
        :class:`Differences`: refused, warned and not-recorded lines.
    """
    version = int(stored.get("identity_version", 1) or 1)
    old, new = _normalised(stored), _normalised(run)
    refused, warned, unknown = [], [], []
    for field in fields:
        if field.name not in stored and (field.required or version < field.since) and field.name in new:
            unknown.append(field.name)
            continue
        refused += _differing(field.name, json_safe(old.get(field.name)), json_safe(new.get(field.name)), what)
    for field in harmless:
        if field.name in stored and field.name in run:
            warned += _differing(field.name, json_safe(old.get(field.name)), json_safe(new.get(field.name)), what)
    return Differences(refused, warned, unknown)


def class_differences(found: object, class_name: str, modality: str | None, domain: str | None,
                      what: str = "calibration", description: str | None = None) -> list[str]:
    """Differences of class, description, preset and domain between what a per-class record was made for
    and this run (``modality``, ``domain``, ``description`` None: not checked).

    ``found`` is a calibration's or a memory's class entry: it has ``class_name``, ``description``,
    ``modality`` (None: not recorded) and ``domain``. ``what`` names it in the lines.
    """
    differ = []
    if found.class_name != class_name:
        differ.append(f"class: {what} {found.class_name!r}, this run {class_name!r}")
    if description is not None and found.description and found.description != description:
        differ.append(f"description: {what} {found.description!r}, this run {description!r}")
    if found.modality and modality and found.modality != modality:
        differ.append(f"modality: {what} {found.modality!r}, this run {modality!r}")
    if domain and found.domain != domain:
        differ.append(f"domain: {what} {found.domain!r}, this run {domain!r}")
    return differ


def digest(record: Mapping, fields: Iterable[Field] = OUTPUT_FIELDS) -> str:
    """A hex sha256 of what ``record`` says in ``fields`` (normalised as :func:`differences` compares them).

    Two records that :func:`differences` finds equal over ``fields`` have the same digest, so it can name
    a result deterministically (e.g. DICOM UIDs derived from a source UID and the run's identity).
    """
    normalised = _normalised(record)
    content = {f.name: json_safe(normalised.get(f.name)) for f in fields}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
