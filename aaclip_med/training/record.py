"""What a training folder's work was done with (``OUT/train_config.json``), and the checks around it.

The record holds three sections: ``config`` (the :class:`TrainConfig` with the precision and the
class descriptions resolved), ``network`` (the AA-CLIP config: backbone, image size, CLIP weights,
adapter layout) and ``data`` (size and fingerprint of the training and validation samples).

A run that resumes in a folder with finished or interrupted work must not change anything that
changes outputs: the shared settings (seed, precision, descriptions, validation domain, network,
data) whenever there is work, and a stage's own settings when that stage has work. Settings of a
stage that has not started yet may change; the record then gets them, and keeps the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aaclip_med.keys import Keys

__all__ = [
    "RECORD_FILE",
    "FINAL_ADAPTERS",
    "OUTPUT_NAMES",
    "STATE_FILE",
    "stage_done",
    "carried_stages",
    "check_stage2_start",
    "check_trainable",
    "clear_outputs",
    "differences",
    "merge_record",
    "read_record",
    "sample_records",
    "summarize_data",
    "touched_stages",
]

logger = logging.getLogger(__name__)

RECORD_FILE = "train_config.json"
STATE_FILE = "train_state.pt"
FINAL_ADAPTERS = "adapters.safetensors"
# every file and folder a training run writes in OUT (what --force deletes before starting afresh)
OUTPUT_NAMES = (STATE_FILE, RECORD_FILE, "log.jsonl", FINAL_ADAPTERS, "adapters.json",
                "stage1", "stage2", "tensorboard")
SHARED_KEYS = ("seed", "case_window", "precision", "descriptions", "domain", "synthetic")
STAGE_KEYS = {1: ("stage1", "stage1_levels", "disentangle_weight"), 2: ("stage2", "image_logit_scale")}
# values of settings that records written before the setting existed were trained with
_BEFORE_RECORDED = {"image_logit_scale": 1.0}


# ------------------------------------------------------------------ data
def sample_records(data: Sequence) -> Iterable[Mapping]:
    """The manifest records of a MONAI Dataset (no image loaded), else the samples themselves."""
    records = getattr(data, "data", None)
    if isinstance(records, Sequence) and records and isinstance(records[0], Mapping):
        return records
    return (data[i] for i in range(len(data)))


def _digest_value(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().as_subclass(torch.Tensor).contiguous().numpy()
    if isinstance(value, np.ndarray):
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    else:
        digest.update(json.dumps(value, sort_keys=True, default=str).encode())


def _has_mask(item: Mapping) -> bool:
    mask = item.get(Keys.MASK)
    if mask is not None and not isinstance(mask, str):
        return bool(torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).any())
    return bool(item.get(Keys.MASK_PATH))


def summarize_data(data: Sequence) -> dict[str, Any]:
    """Size, anomalous count, samples with a mask, class names and a fingerprint of the samples.

    Manifest datasets are read from their records (paths relative to the root, labels, classes),
    so moving the dataset root keeps the fingerprint; in-memory samples are hashed with their
    tensors.
    """
    digest = hashlib.sha256()
    samples = anomalous = with_mask = 0
    classes: set[str] = set()
    for item in sample_records(data):
        for key in sorted(item):
            digest.update(str(key).encode())
            _digest_value(digest, item[key])
        samples += 1
        anomalous += int(float(item.get(Keys.LABEL, 0.0)) > 0.5)
        with_mask += int(_has_mask(item))
        classes.add(str(item[Keys.CLASS_NAME]))
    return {"samples": samples, "anomalous": anomalous, "with_mask": with_mask, "classes": sorted(classes),
            "sha256": digest.hexdigest()}


def check_trainable(summary: Mapping[str, Any], synthetic: bool = False) -> None:
    """Refuse training data without any anomaly mask (nothing for either stage to learn from).

    With synthetic anomalies (``synthetic``) normal samples are enough: the generator makes the masks.
    """
    if summary["with_mask"] > 0 or (synthetic and summary["samples"] > 0):
        return
    msg = (f"The training data cannot train AA-CLIP: of its {summary['samples']} samples, "
           f"{summary['anomalous']} are anomalous and none has an anomaly mask. Both stages learn from "
           "the pixel masks of anomalous samples (Stage 1 aligns the text anchors with them, Stage 2 the "
           "patch features). Use a manifest that lists anomalous samples with their mask_path, e.g. the "
           "split of a defect dataset that ships masks, or train a normal-only manifest with synthetic "
           "anomalies (--synthetic-anomalies perlin,cutpaste,lesion; TrainConfig.synthetic).")
    raise ValueError(msg)


# ------------------------------------------------------------------ stages
def carried_stages(extra: Mapping[str, Any] | None) -> set[int]:
    """Stages already trained in an adapters file, from its metadata (``extra`` of save_adapters)."""
    if not extra:
        return set()
    if "trained_stages" in extra:
        return {int(s) for s in extra["trained_stages"]}
    if extra.get("imported_from"):
        return {1, 2}  # the authors' text and image adapters, both trained
    if "stages" in extra:
        return {int(s) for s in extra["stages"]}
    if "stage" in extra:
        return {int(extra["stage"])}
    return set()


def touched_stages(recorded_stages: Iterable[int], state: Mapping[str, Any] | None) -> set[int]:
    """Stages with work in the folder: finished before the state's stage, and that one if it progressed."""
    if state is None:
        return set()
    current = int(state["stage"])
    touched = {int(s) for s in recorded_stages if int(s) < current}
    if state.get("completed") or int(state.get("iteration", 0)) > 0:
        touched.add(current)
    return touched


def stage_done(state: Mapping[str, Any] | None, stage: int) -> bool:
    """Whether the resumable ``state`` has ``stage`` finished (a later stage started, or it completed)."""
    if state is None:
        return False
    return int(state["stage"]) > stage or (int(state["stage"]) == stage and bool(state.get("completed")))


def check_stage2_start(out: Path, state: Mapping[str, Any] | None, carried: set[int]) -> None:
    """Refuse Stage 2 alone without trained Stage-1 text adapters (its anchors come from them)."""
    if stage_done(state, 1) or 1 in carried:
        return
    where = (f"{out} holds an unfinished Stage 1" if state is not None
             else f"{out} holds no finished Stage 1")
    msg = (f"Stage 2 alone needs trained Stage-1 text adapters (its fixed anchors come from them), but "
           f"{where} and the network's adapters carry no trained Stage 1. Run both stages (--stage both), "
           "finish Stage 1 in this folder first (--stage 1), or pass --weights with adapters whose "
           "Stage 1 was trained (e.g. OUT/stage1/best.safetensors or OUT/adapters.safetensors of a run).")
    raise ValueError(msg)


# ------------------------------------------------------------------ record
def read_record(out: Path, state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The folder's record; a state without a record file gives its config section alone."""
    path = out / RECORD_FILE
    if path.is_file():
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); restore it, or pass --force to start afresh.") from err
        return record if "config" in record else {"config": record}  # a flat record of older versions
    if state is not None and isinstance(state.get("config"), Mapping):
        return {"config": dict(state["config"])}
    return None


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            _diff(old.get(key), new.get(key), f"{path}.{key}", out)
    elif old != new and not (isinstance(old, (int, float)) and isinstance(new, (int, float)) and float(old) == float(new)):
        out.append(f"{path}: {old!r} there, {new!r} now")


def differences(previous: Mapping[str, Any], new: Mapping[str, Any], touched: set[int], running: Iterable[int]) -> list[str]:
    """Each setting that differs from the finished or interrupted work and would change its outputs."""
    found: list[str] = []
    if not touched:
        return found
    old_cfg, new_cfg = previous.get("config", {}), new["config"]
    old_cfg = {**_BEFORE_RECORDED, **old_cfg} if old_cfg else old_cfg
    keys = [k for k in SHARED_KEYS if k in old_cfg]
    for stage in sorted(touched & set(running)):
        keys += [k for k in STAGE_KEYS[stage] if k in old_cfg]
    for key in keys:
        _diff(old_cfg[key], new_cfg.get(key), key, found)
    for section in ("network", "data"):
        if section in previous:
            _diff(previous[section], new.get(section), section, found)
    return found


def merge_record(previous: Mapping[str, Any] | None, new: dict[str, Any], touched: set[int]) -> dict[str, Any]:
    """The record after this run starts: the previous one where there is work, the new one elsewhere."""
    if previous is None or not touched or "network" not in previous:
        return new
    merged = json.loads(json.dumps(previous))
    for stage in (1, 2):
        if stage not in touched and stage in new["config"]["stages"]:
            for key in STAGE_KEYS[stage]:
                merged["config"][key] = new["config"][key]
    stages = set(merged["config"].get("stages", [])) | set(new["config"]["stages"])
    merged["config"]["stages"] = sorted(stages)
    return merged


def clear_outputs(out: Path) -> list[str]:
    """Delete the training outputs in ``out`` (nothing else); returns the names deleted."""
    removed = []
    for name in OUTPUT_NAMES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    if removed:
        logger.warning("Starting afresh in %s: deleted the earlier training outputs %s", out, removed)
    return removed
