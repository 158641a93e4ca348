"""The time stamp every record of this package carries: UTC, ISO 8601, to the second.

``2026-12-08T01:02:03+00:00``: one form in run.json, cards, reports and the PACS records, so a
reader can parse and compare any two of them (``datetime.fromisoformat``).
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["utc_timestamp"]


def utc_timestamp(seconds: float | None = None) -> str:
    """The time ``seconds`` (since the epoch, as ``time.time()`` gives it; None: now) as a record's time stamp."""
    moment = datetime.now(timezone.utc) if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="seconds")
