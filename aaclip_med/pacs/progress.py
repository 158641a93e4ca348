"""Progress of an archive run that people can watch: one line per rank, ``OUT/status/rank-<N>.json``, a table.

Each rank rewrites its status file atomically after every series (done / failed / ignored /
remaining, series per hour, ETA, the series it works on, its failures with their reasons), so
``aaclip-med pacs status OUT`` can sum all ranks while the run goes on, from any host that sees the
folder. On a terminal each rank also prints its line after each series.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from aaclip_med.files import write_json_atomic
from aaclip_med.timestamps import utc_timestamp

__all__ = ["STATUS_DIR", "RankProgress", "read_rank_status", "format_duration", "process_state", "status_table"]

STATUS_DIR = "status"
COUNTED = ("done", "failed", "ignored")  # the outcomes of a series processed by this run


def format_duration(seconds: float | None) -> str:
    """``1d 02:03`` / ``02:03:04`` / ``-`` (unknown)."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours:02d}:{minutes:02d}" if days else f"{hours:02d}:{minutes:02d}:{secs:02d}"


class RankProgress:
    """The counts of one rank over its share, written to ``OUT/status/rank-<rank>.json`` on each change.

    Args:
        out_dir: the output folder.
        run_id: this run's id (the same on every rank; stale files of earlier runs carry others).
        rank, world_size: this rank and the number of ranks.
        share: the number of series in this rank's share.
        terminal: print the rank's line after each series (default: when stderr is a terminal).
    """

    def __init__(self, out_dir: Path, run_id: str, rank: int, world_size: int, share: int,
                 terminal: bool | None = None) -> None:
        self.path = out_dir / STATUS_DIR / f"rank-{rank}.json"
        self.run_id, self.rank, self.world_size, self.share = run_id, rank, world_size, share
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.counts = dict.fromkeys(COUNTED, 0)
        self.failures: list[dict] = []
        self.current: str | None = None
        self.started = time.time()
        self.finished = False
        self.stopped: str | None = None  # why the rank stopped before the end of its share (server unusable)
        self.results: list[dict] | None = None  # each series' outcome, written once the share is finished
        self.write()

    @property
    def processed(self) -> int:
        return sum(self.counts.values())

    def rate(self) -> float | None:
        """Series per hour since this rank started (None before the first)."""
        hours = (time.time() - self.started) / 3600
        return self.processed / hours if self.processed and hours > 0 else None

    def record(self) -> dict:
        rate = self.rate()
        remaining = self.share - self.processed
        return {"run_id": self.run_id, "rank": self.rank, "world_size": self.world_size, "host": socket.gethostname(),
                "pid": os.getpid(), "started": utc_timestamp(self.started), "updated": utc_timestamp(),
                "share": self.share, **self.counts, "remaining": remaining, "current": self.current,
                "series_per_hour": round(rate, 2) if rate else None,
                "eta_s": round(remaining / rate * 3600) if rate else None,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # Linux: KiB
                "finished": self.finished, "stopped": self.stopped, "failures": self.failures,
                **({"results": self.results} if self.finished and self.results is not None else {})}

    def write(self) -> dict:
        record = self.record()
        write_json_atomic(self.path, record)
        return record

    def working_on(self, series_uid: str) -> None:
        self.current = series_uid
        self.write()

    def add(self, status: str, series_uid: str, error: str | None = None) -> None:
        """Count one series' outcome (``done``, ``failed``, ``ignored``) and show the rank's line."""
        self.counts[status] += 1
        if status == "failed":
            self.failures.append({"series_uid": series_uid, "error": error})
        self.current = None
        record = self.write()
        if self.terminal:
            print(line(record), file=sys.stderr, flush=True)

    def finish(self) -> dict:
        self.finished, self.current = True, None
        return self.write()


def line(record: Mapping) -> str:
    """``rank 1/2: done 12, failed 1, ignored 0, remaining 18, 40.2 series/h, ETA 00:27:00``."""
    rate = record.get("series_per_hour")
    return (f"rank {record['rank']}/{record['world_size']}: done {record['done']}, failed {record['failed']}, "
            f"ignored {record['ignored']}, remaining {record['remaining']}, "
            f"{f'{rate:.1f}' if rate else '-'} series/h, ETA {format_duration(record.get('eta_s'))}")


def read_rank_status(out_dir: Path, run_id: str | None = None) -> list[dict]:
    """The status files of ``out_dir`` (of ``run_id`` only, when given), by rank."""
    records = []
    for path in sorted((out_dir / STATUS_DIR).glob("rank-*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # being replaced right now, or foreign: the next look sees it
        if isinstance(record, dict) and (run_id is None or record.get("run_id") == run_id):
            records.append(record)
    return sorted(records, key=lambda r: r.get("rank", 0))


def process_state(record: Mapping) -> str:
    """``finished``, ``gone`` (its process no longer exists on this host) or ``running``."""
    if record.get("finished"):
        return "finished"
    if record.get("host") == socket.gethostname():
        try:
            os.kill(int(record["pid"]), 0)
        except (ProcessLookupError, ValueError, KeyError, TypeError):
            return "gone"  # killed or crashed: its share is left for the rerun
        except PermissionError:
            pass
    return "running"


def status_table(ranks: list[dict], overall: Mapping[str, int]) -> str:
    """The ranks of one run as a table, their sum, and the whole work list's state on disk."""
    head = ("rank", "host", "state", "done", "failed", "ignored", "remaining", "series/h", "ETA", "updated")
    rows = []
    for r in ranks:
        rate = r.get("series_per_hour")
        rows.append((f"{r['rank']}/{r['world_size']}", str(r.get("host", "?")), process_state(r), str(r["done"]),
                     str(r["failed"]), str(r["ignored"]), str(r["remaining"]), f"{rate:.1f}" if rate else "-",
                     format_duration(r.get("eta_s")), str(r.get("updated", "?"))[11:19]))
    if ranks:
        rates = [r["series_per_hour"] for r in ranks if r.get("series_per_hour") and process_state(r) == "running"]
        remaining = sum(r["remaining"] for r in ranks)
        rate = sum(rates)
        rows.append(("all", "", "", *(str(sum(r[k] for r in ranks)) for k in ("done", "failed", "ignored")),
                     str(remaining), f"{rate:.1f}" if rate else "-",
                     format_duration(remaining / rate * 3600 if rate else None), ""))
    widths = [max(len(row[n]) for row in (head, *rows)) for n in range(len(head))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (head, *rows)]
    text.append("work list: " + ", ".join(f"{key} {value}" for key, value in overall.items()))
    return "\n".join(text)
