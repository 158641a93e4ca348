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

from aaclip_med import identity
from aaclip_med.files import write_json_atomic
from aaclip_med.identity import HARMLESS_FIELDS, OUTPUT_FIELDS

__all__ = ["RUN_FILE", "differences", "claim_output_folder"]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"


def differences(finished: Mapping, new: Mapping) -> list[str]:
    """One line per output-changing setting (:data:`~aaclip_med.identity.OUTPUT_FIELDS`, or part of one)
    in which ``new`` differs from the ``finished`` record."""
    return identity.differences(finished, new, OUTPUT_FIELDS, what="finished work").refused


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
        found = identity.differences(existing, record, OUTPUT_FIELDS, what="finished work", harmless=HARMLESS_FIELDS)
        if found.refused:
            msg = (f"{out_dir} holds outputs made with other settings; resuming would mix them:\n  "
                   + "\n  ".join(found.refused)
                   + "\nRe-run with the same settings to resume, choose a new output folder, or pass --force "
                     "(force=True) to recompute every case with the new settings.")
            raise ValueError(msg)
        if found.unknown:
            logger.warning("resuming into %s: its run.json (written by an older aaclip-med) does not record %s, "
                           "which cannot be checked", out_dir, ", ".join(found.unknown))
        for line in found.warned:
            logger.warning("resuming into %s although %s (the same content, so the outputs match)", out_dir, line)
        logger.info("resuming into %s: settings match its run.json", out_dir)
        return False
    if not force and finished_work:
        msg = (f"{out_dir} holds finished cases but no readable {RUN_FILE}, so their settings are unknown; choose "
               "a new output folder or pass --force (force=True) to recompute every case.")
        raise ValueError(msg)
    write_json_atomic(path, dict(record))
    return True
