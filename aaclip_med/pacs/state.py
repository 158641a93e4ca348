"""What was done to each series, kept in ``OUT/state/<key>.json`` so that runs and listeners resume.

Series are keyed by :func:`series_key` (a hash of the SeriesInstanceUID), which also names their
folders and output files: no patient attribute ever reaches a file name. A record holds the
series' study/series UIDs, a status and, once inferred, the output files with their SOP Instance
UIDs. Each series has its own file, rewritten atomically after every change: a killed process
leaves the state of its last completed step, and ranks of an archive run (on one host or several
sharing the folder) never write the same file.

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
from pathlib import Path

from aaclip_med.files import write_json_atomic
from aaclip_med.timestamps import utc_timestamp

__all__ = ["STATE_DIR", "INCOMING_DIR", "RESULTS_DIR", "series_key", "instance_name", "SeriesState", "FINISHED"]

logger = logging.getLogger(__name__)

STATE_DIR = "state"
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
    """The per-series records of an output folder (thread-safe; one file per series, written atomically).

    Args:
        out_dir: the output folder; the records live in ``out_dir/state/<key>.json``.

    Raises:
        ValueError: a record file is not valid JSON or not a record of aaclip-med pacs.
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.path = Path(out_dir) / STATE_DIR
        self._lock = threading.Lock()
        self._records: dict[str, dict] = {p.stem: self._read(p) for p in sorted(self.path.glob("s*.json"))}

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON ({err}); delete it to redo that series") from err
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise ValueError(f"{path} is not a series record of aaclip-med pacs; delete it to redo that series")
        return data

    def file(self, key: str) -> Path:
        """The record file of series ``key``."""
        return self.path / f"{key}.json"

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
            record.update(fields, updated=utc_timestamp())
            write_json_atomic(self.file(key), record)
            return dict(record)

    def reload(self, key: str) -> dict | None:
        """The record of ``key`` as its file says now (another process may have written it)."""
        path = self.file(key)
        record = self._read(path) if path.is_file() else None
        with self._lock:
            if record is None:
                self._records.pop(key, None)
            else:
                self._records[key] = record
        return dict(record) if record else None

    def records(self) -> dict[str, dict]:
        """Copies of all records, by key."""
        with self._lock:
            return {key: dict(record) for key, record in self._records.items()}
