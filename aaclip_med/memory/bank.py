"""The reference memory file: normal patch features per class and level, with the identity they came from.

A ``refs.safetensors`` file holds, for each class, one (N_l, D) float16 tensor per level of the
network's anomaly maps (the L2-normalised patch features the seg heads produce), and in its header
(JSON under ``__metadata__["aaclip_med_references"]``):

- ``model``: the identity of the network and slicing (:func:`aaclip_med.identity.memory_identity`:
  backbone, input size, CLIP weights, adapter file and adapter tensors, slice axis of volumes);
- ``tensors_sha256``: per stored tensor, the sha256 of its bytes (format 2), checked on load, so a
  damaged file is refused by name instead of giving NaN maps;
- per class: its description, modality preset, domain, how many slices and patches were seen and
  kept, and the statistics of the combination rule (:mod:`aaclip_med.memory.scoring`): mean
  and std of the zero-shot map, of the memory map and of the global score over the references.

Features only mean something for the network that computed them, so a file of another identity is
refused with each difference named (:func:`check_references`), through the same comparison as
calibration and resume (:func:`aaclip_med.identity.differences`). On load, every feature must be
finite and of unit length (float16 rounding allowed): a file that passes its checksums but holds
something else is refused too.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from aaclip_med.files import atomic_path
from aaclip_med.identity import MEMORY_FIELDS, class_differences, differences
from aaclip_med.model.digest import tensor_sha256

__all__ = ["ClassMemory", "ReferenceBank", "save_references", "load_references", "check_references", "STAT_KEYS"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: tensors_sha256 (checksums of the stored features)
_UNIT_NORM_TOLERANCE = 1e-2  # float16 features of unit length: |norm - 1| is about 1e-3 at most
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
    """Write ``bank`` as safetensors (atomically); features are stored as float16 with their checksums."""
    from safetensors.torch import save_file

    tensors = {f"{name}/level{index}": level.to(torch.float16).contiguous()
               for name, memory in bank.classes.items() for index, level in enumerate(memory.levels)}
    header = {"format_version": FORMAT_VERSION, "model": bank.model,
              "classes": {name: memory.header() for name, memory in bank.classes.items()},
              "tensors_sha256": {key: tensor_sha256(tensor) for key, tensor in tensors.items()}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_HEADER_KEY: json.dumps(header)})
    return Path(path)


def load_references(path: str | os.PathLike) -> ReferenceBank:
    """Read a file written by :func:`save_references` (features stay float16), checked whole.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a reference memory file, a newer format, a tensor whose bytes do not match
            its checksum, or features that are not finite unit vectors (each named with the file).
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
    try:
        header = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: the reference memory's header is damaged ({err.msg}); build the file again") from err
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: reference memory format {header['format_version']} is newer than this aaclip-med reads")
    _check_tensors(path, tensors, header.get("tensors_sha256"))
    classes = {}
    for name, info in header["classes"].items():
        count = sum(1 for key in tensors if key.startswith(f"{name}/level"))
        levels = [tensors[f"{name}/level{index}"] for index in range(count)]
        fields = {k: v for k, v in info.items() if k != "patches_kept"}
        classes[name] = ClassMemory(levels=levels, **fields)
    return ReferenceBank(classes, dict(header.get("model", {})), source=str(path))


def _check_tensors(path: Path, tensors: Mapping[str, torch.Tensor], checksums: Mapping[str, str] | None) -> None:
    """Refuse damaged features: a checksum that does not match, or rows that are not finite unit vectors."""
    if checksums is None:
        logger.warning("%s: a reference memory of format 1 holds no checksums; its features are checked for finite "
                       "unit vectors only (build it again to have them checked whole)", path)
    else:
        missing = sorted(set(checksums) - set(tensors))
        if missing:
            raise ValueError(f"{path}: the reference memory lacks tensor(s) {missing[:4]}; build the file again")
        for key, expected in checksums.items():
            if tensor_sha256(tensors[key]) != expected:
                raise ValueError(f"{path}: tensor {key} does not match its checksum: the file is damaged; build it again")
    for key, tensor in tensors.items():
        values = tensor.float()
        if not bool(torch.isfinite(values).all()):
            bad = int((~torch.isfinite(values)).any(dim=-1).sum())
            raise ValueError(f"{path}: tensor {key} holds {bad} feature(s) that are not finite numbers; build the file again")
        norms = values.norm(dim=-1)
        worst = float((norms - 1).abs().max()) if norms.numel() else 0.0
        if worst > _UNIT_NORM_TOLERANCE:
            raise ValueError(f"{path}: tensor {key} holds features of length up to {1 + worst:.3g} instead of unit "
                             "vectors: not a memory this package wrote; build the file again")


def check_references(bank: ReferenceBank, identity: Mapping, class_name: str, modality: str | None = None,
                     domain: str | None = None, source: str = "the reference memory",
                     description: str | None = None) -> ClassMemory:
    """The memory of ``class_name``, refused when it was built by another network, for other slices or
    with another description.

    Args:
        bank: the loaded memory.
        identity: this run's :func:`~aaclip_med.identity.memory_identity` (network and ``slice_axis``).
        class_name, modality, domain: the cases it is applied to (None: not checked).
        source: how the file is named in messages (its path).
        description: the class description of this run (None: not checked); the memory's zero-shot
            statistics were measured with its own, so another one would standardise the map wrongly.

    Raises:
        ValueError: one line naming every difference, or the missing class with the classes there are.
    """
    found = bank.classes.get(class_name)
    if found is None:
        msg = (f"{source} has no references of class {class_name!r} (classes: {sorted(bank.classes)}); build it "
               "with --class-name set to this class")
        raise ValueError(msg)
    run = dict(identity)
    if run.get("slice_axis") is None or bank.model.get("slice_axis") is None:
        run["slice_axis"] = bank.model.get("slice_axis")  # not known on one side: not compared
    found_differences = differences(bank.model, run, MEMORY_FIELDS, what="references")
    differ = list(found_differences.refused)
    unknown = list(found_differences.unknown)
    if unknown == ["adapter_tensors_sha256"] and bank.model.get("weights_sha256"):
        # an older file of trained adapters: their file's sha256 (compared above) pins the tensors
        logger.warning("%s records no adapter_tensors_sha256 (an older aaclip-med); the adapters are checked by "
                       "their file's sha256 only", source)
        unknown = []
    if unknown:
        differ.append(f"not recorded in the file: {', '.join(unknown)}")
    differ += class_differences(found, class_name, modality, domain, what="references", description=description)
    if differ:
        msg = (f"{source} was built with other settings ({'; '.join(differ)}): its patch features cannot be "
               "compared with this run's; build it again with this run's model options")
        raise ValueError(msg)
    return found
