"""The reference memory file: normal patch features per class and level, with the identity they came from.

A ``refs.safetensors`` file holds, for each class, one (N_l, D) float16 tensor per level of the
network's anomaly maps (the L2-normalised patch features the seg heads produce), and in its header
(JSON under ``__metadata__["aaclip_med_references"]``):

- ``model``: the identity calibration records (:data:`~aaclip_med.inference.calibration.MODEL_FIELDS`:
  backbone, input size, CLIP weights, adapters hash) and the slice axis of volumes;
- per class: its description, modality preset, domain, how many slices and patches were seen and
  kept, and the statistics of the combination rule (:mod:`aaclip_med.adaptation.scoring`): mean
  and std of the zero-shot map, of the memory map and of the global score over the references.

Features only mean something for the network that computed them, so a file of another identity is
refused with each difference named (:func:`check_references`), the same comparison calibration uses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from aaclip_med.files import atomic_path
from aaclip_med.inference.calibration import MODEL_FIELDS, class_differences, model_differences

__all__ = ["ClassMemory", "ReferenceBank", "save_references", "load_references", "check_references", "STAT_KEYS"]

FORMAT_VERSION = 1
_HEADER_KEY = "aaclip_med_references"
# the statistics of the combination rule, stored per class (see scoring.py)
STAT_KEYS = ("zero_shot_mean", "zero_shot_std", "memory_mean", "memory_std", "global_mean", "global_std")


@dataclass
class ClassMemory:
    """The normal patch features of one class.

    Attributes:
        class_name, description: the class and the text its zero-shot map was computed with.
        modality, domain: the preset the references were preprocessed with and their domain.
        levels: per level (N_l, D) float16 features, L2-normalised per patch.
        stats: :data:`STAT_KEYS` -> value, measured on the references themselves.
        slices: reference slices seen.
        patches_seen: patches per level before the coreset.
    """

    class_name: str
    description: str
    modality: str
    domain: str
    levels: list[torch.Tensor]
    stats: dict[str, float]
    slices: int = 0
    patches_seen: int = 0

    @property
    def patches_kept(self) -> int:
        return int(self.levels[0].shape[0]) if self.levels else 0

    def header(self) -> dict:
        out = asdict(self) | {"patches_kept": self.patches_kept}
        out.pop("levels")
        return out


@dataclass
class ReferenceBank:
    """Class memories keyed by class name, and the identity of the network that computed them.

    ``source`` is the file it was read from (set by :func:`load_references`): a run given the loaded
    memory still records that file and its sha256, as a run given the path does.
    """

    classes: dict[str, ClassMemory] = field(default_factory=dict)
    model: dict[str, object] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for m in self.classes.values() for t in m.levels)


def save_references(bank: ReferenceBank, path: str | os.PathLike) -> Path:
    """Write ``bank`` as safetensors (atomically); features are stored as float16."""
    from safetensors.torch import save_file

    tensors = {f"{name}/level{index}": level.to(torch.float16).contiguous()
               for name, memory in bank.classes.items() for index, level in enumerate(memory.levels)}
    header = {"format_version": FORMAT_VERSION, "model": bank.model,
              "classes": {name: memory.header() for name, memory in bank.classes.items()}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_HEADER_KEY: json.dumps(header)})
    return Path(path)


def load_references(path: str | os.PathLike) -> ReferenceBank:
    """Read a file written by :func:`save_references` (features stay float16).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a reference memory file, or a newer format.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference memory {path}: no such file; build one with 'aaclip-med references build'")
    try:
        with safe_open(str(path), framework="pt") as handle:
            text = (handle.metadata() or {}).get(_HEADER_KEY)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()} if text else {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a safetensors file ({err})") from err
    if not text:
        raise ValueError(f"{path}: not an aaclip-med reference memory (no '{_HEADER_KEY}' header); "
                         "build one with 'aaclip-med references build'")
    header = json.loads(text)
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: reference memory format {header['format_version']} is newer than this aaclip-med reads")
    classes = {}
    for name, info in header["classes"].items():
        count = sum(1 for key in tensors if key.startswith(f"{name}/level"))
        levels = [tensors[f"{name}/level{index}"] for index in range(count)]
        fields = {k: v for k, v in info.items() if k != "patches_kept"}
        classes[name] = ClassMemory(levels=levels, **fields)
    return ReferenceBank(classes, dict(header.get("model", {})), source=str(path))


def check_references(bank: ReferenceBank, identity: Mapping, class_name: str, modality: str | None = None,
                     domain: str | None = None, source: str = "the reference memory") -> ClassMemory:
    """The memory of ``class_name``, refused when it was built by another network or for other slices.

    Args:
        bank: the loaded memory.
        identity: this run's network (:data:`MODEL_FIELDS`, plus ``slice_axis`` when known).
        class_name, modality, domain: the cases it is applied to (None: not checked).
        source: how the file is named in messages (its path).

    Raises:
        ValueError: one line naming every difference, or the missing class with the classes there are.
    """
    found = bank.classes.get(class_name)
    if found is None:
        msg = (f"{source} has no references of class {class_name!r} (classes: {sorted(bank.classes)}); build it "
               "with --class-name set to this class")
        raise ValueError(msg)
    model_identity = {key: identity.get(key) for key in MODEL_FIELDS}
    differ, unknown = model_differences(bank.model, model_identity, what="references")
    if unknown:
        differ.append(f"not recorded in the file: {', '.join(unknown)}")
    axis = identity.get("slice_axis")
    if axis is not None and bank.model.get("slice_axis") not in (None, axis):
        differ.append(f"slice_axis: references {bank.model['slice_axis']!r}, this run {axis!r}")
    differ += class_differences(found, class_name, modality, domain, what="references")
    if differ:
        msg = (f"{source} was built with other settings ({'; '.join(differ)}): its patch features cannot be "
               "compared with this run's; build it again with this run's model options")
        raise ValueError(msg)
    return found
