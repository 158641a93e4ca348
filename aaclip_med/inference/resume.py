"""Resuming into an output folder: only with the settings that produced its finished work.

``run.json`` is written before the first case and describes every output in the folder. A later
run into the same folder resumes (finished cases are skipped) only when it would produce the same
outputs; a run with other settings is refused with each difference named, because its new outputs
and the old ones would sit side by side under one record. ``force`` recomputes every case with the
new settings instead. ``run.json`` is never rewritten by a run whose settings produced none of the
outputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from aaclip_med.files import json_safe, write_json_atomic

__all__ = ["RUN_FILE", "OUTPUT_FIELDS", "differences", "claim_output_folder"]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
# run.json fields that change what the outputs contain (not: batch size, workers, device, world size, dates)
OUTPUT_FIELDS = (
    "backbone", "image_size", "pretrained", "weights_sha256", "modality", "domain", "precision", "threshold",
    "dicom", "pmap_values", "calibration", "class_name", "description", "descriptions", "slices", "manifest_sha256",
)


def _value(record: Mapping, key: str) -> object:
    if key == "pretrained" and record.get("pretrained_sha256"):
        return f"sha256:{record['pretrained_sha256']}"  # the same file under another path is the same weights
    return json_safe(record.get(key))


def _show(value: object, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _differing(name: str, old: object, new: object) -> list[str]:
    """Lines for the parts of two values that differ: inside settings made of fields or of items
    (slices, descriptions) the differing field or item is named, so two long values that share a
    beginning are never shown as the same truncated text."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new), key=str)
                for line in _differing(f"{name}.{key}", old.get(key), new.get(key))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for n, (a, b) in enumerate(zip(old, new)) for line in _differing(f"{name}[{n}]", a, b)]
    return [f"{name}: finished work {_show(old)}, this run {_show(new)}"]


def differences(finished: Mapping, new: Mapping) -> list[str]:
    """One line per output-changing setting (or part of one) in which ``new`` differs from the ``finished`` record."""
    return [line for key in OUTPUT_FIELDS for line in _differing(key, _value(finished, key), _value(new, key))]


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def claim_output_folder(out_dir: Path, record: Mapping, finished_work: bool, force: bool) -> bool:
    """Check ``out_dir`` against this run's ``record`` and write ``run.json`` when the folder is new.

    Args:
        out_dir: the output folder (exists).
        record: this run's run.json content.
        finished_work: the folder holds finished cases (done markers).
        force: recompute everything: the caller has cleared the finished work; the record is replaced.

    Returns:
        True when this call wrote ``run.json`` (False: an identical earlier record is kept).

    Raises:
        ValueError: the finished work was produced with other settings (each difference named),
            or with unknown settings (no readable run.json).
    """
    path = out_dir / RUN_FILE
    existing = _read(path) if path.is_file() else None
    if not force and existing is not None:
        changed = differences(existing, record)
        if changed:
            msg = (f"{out_dir} holds outputs made with other settings; resuming would mix them:\n  "
                   + "\n  ".join(changed)
                   + "\nRe-run with the same settings to resume, choose a new output folder, or pass --force "
                     "(force=True) to recompute every case with the new settings.")
            raise ValueError(msg)
        logger.info("resuming into %s: settings match its run.json", out_dir)
        return False
    if not force and finished_work:
        msg = (f"{out_dir} holds finished cases but no readable {RUN_FILE}, so their settings are unknown; choose "
               "a new output folder or pass --force (force=True) to recompute every case.")
        raise ValueError(msg)
    write_json_atomic(path, dict(record))
    return True
