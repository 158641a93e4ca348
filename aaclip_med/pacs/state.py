"""What was done to each series, kept in ``OUT/pacs_state.json`` so that runs and listeners resume.

Series are keyed by :func:`series_key` (a hash of the SeriesInstanceUID), which also names their
folders and output files: no patient attribute ever reaches a file name. A record holds the
series' study/series UIDs, a status and, once inferred, the output files with their SOP Instance
UIDs. The file is rewritten atomically after every change, so a killed process leaves the state
of its last completed step.

Statuses:
    ``inferred``: outputs written, not yet (all) stored at the destination;
    ``done``: outputs stored; never redone;
    ``failed``: a bad series (the error is kept); a listener does not retry it, ``pacs run`` does;
    ``ignored``: not an image series (structured report, segmentation, ...).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from aaclip_med.files import write_json_atomic

__all__ = ["STATE_FILE", "INCOMING_DIR", "RESULTS_DIR", "series_key", "instance_name", "SeriesState", "FINISHED"]

logger = logging.getLogger(__name__)

STATE_FILE = "pacs_state.json"
INCOMING_DIR = "incoming"
RESULTS_DIR = "results"
FINISHED = ("done", "ignored")


def series_key(series_uid: str) -> str:
    """Short, file-name-safe key of a series: ``s`` + 16 hex digits of the UID's sha256."""
    return "s" + hashlib.sha256(series_uid.encode("ascii", "replace")).hexdigest()[:16]


def instance_name(sop_instance_uid: str) -> str:
    """File name of a received or retrieved instance: a hash of its SOP Instance UID."""
    return "i" + hashlib.sha256(sop_instance_uid.encode("ascii", "replace")).hexdigest()[:20] + ".dcm"


class SeriesState:
    """The per-series records of an output folder (thread-safe; written atomically on each change).

    Args:
        out_dir: the output folder; the state lives in ``out_dir/pacs_state.json``.

    Raises:
        ValueError: the state file exists but is not a JSON object of records.
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.path = Path(out_dir) / STATE_FILE
        self._lock = threading.Lock()
        self._records: dict[str, dict] = self._load()

    def _load(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.path} is not valid JSON ({err}); move it away to start afresh") from err
        if not isinstance(data, dict) or not isinstance(data.get("series"), dict):
            raise ValueError(f"{self.path} is not a state file of aaclip-med pacs; move it away to start afresh")
        return data["series"]

    def get(self, key: str) -> dict | None:
        """A copy of the record of ``key``, or None."""
        with self._lock:
            record = self._records.get(key)
            return dict(record) if record else None

    def status(self, key: str) -> str | None:
        record = self.get(key)
        return record["status"] if record else None

    def update(self, key: str, **fields) -> dict:
        """Merge ``fields`` into the record of ``key`` (created if new) and save; returns the record."""
        with self._lock:
            record = self._records.setdefault(key, {})
            record.update(fields, updated=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            write_json_atomic(self.path, {"series": self._records})
            return dict(record)

    def records(self) -> dict[str, dict]:
        """Copies of all records, by key."""
        with self._lock:
            return {key: dict(record) for key, record in self._records.items()}
