"""The one case-run loop of inference: resume markers, sharding, failure isolation, progress, merge.

A run is a list of *units* (cohort mode: one case per source; manifest mode: one source with its
manifest lines) and a :class:`Job` that knows how to load, process and merge them. This module
does the rest, the same way for both modes:

1. rank 0 removes temporaries an interrupted run left, checks the folder against ``run.json``
   (see :mod:`aaclip_med.inference.resume`) and writes it before the first unit;
2. units are sharded across torchrun ranks; a unit whose done-marker exists is skipped;
3. sources load in DataLoader workers while the network runs (``prefetch``);
4. a unit that fails is logged with its file and error, and the run goes on;
5. rank 0 merges the per-unit results (score tables, ``predictions.jsonl``) and writes
   ``summary.json`` ({total, done, skipped, failed}).

A run in which every unit failed leaves no run record, table or summary behind (nothing in the
folder would be true), says so in its summary (``all_failed``) and the CLI exits non-zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from aaclip_med.distributed import DistContext, barrier, gather_objects, shard
from aaclip_med.files import remove_stale_temporaries, write_json_atomic
from aaclip_med.inference.errors import short_error
from aaclip_med.inference.prefetch import prefetch
from aaclip_med.inference.resume import RUN_FILE, claim_output_folder

__all__ = ["Job", "run_job", "SUMMARY_FILE"]

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


class Job(Protocol):
    """What one mode of inference contributes to :func:`run_job`."""

    noun: str  # what a unit is called in progress bars and messages ("case", "source")
    load: Callable[[Any], Any]  # picklable: runs in DataLoader workers

    def units(self) -> list[Any]: ...  # every unit of the run, in output order (the same on every rank)

    def unit_id(self, unit: Any) -> str: ...

    def unit_path(self, unit: Any) -> str: ...

    def is_done(self, unit: Any) -> bool: ...  # its done-marker exists

    def has_finished_work(self) -> bool: ...  # any done-marker in the folder

    def clear(self) -> None: ...  # forget finished work: its markers and partial results (force)

    def process(self, unit: Any, loaded: Any) -> None: ...  # may defer the work (batching)

    def finish(self) -> dict[str, str]: ...  # deferred work done; unit id -> error of those that failed

    def merge(self, units: list[Any]) -> list[Path]: ...  # rank 0: the run's tables from the markers


def _prepare(job: Job, out_dir: Path, record: Mapping, force: bool, info: DistContext) -> bool:
    """Rank 0 readies the folder; returns whether this run wrote run.json (on rank 0).

    A refusal on rank 0 is raised on every rank (the others would wait for it forever otherwise).
    """
    wrote, refusal = False, None
    if info.is_main:
        removed = remove_stale_temporaries(out_dir)
        if removed:
            logger.info("removed %d temporary file(s) left by an interrupted run", removed)
        if force:
            job.clear()
        try:
            wrote = claim_output_folder(out_dir, record, job.has_finished_work(), force)
        except ValueError as err:
            refusal = str(err)
    refusal = gather_objects(refusal, info)[0]
    if refusal is not None:
        raise ValueError(refusal)
    return wrote


def _run_shard(job: Job, units: list, info: DistContext, workers: int, progress: bool) -> dict:
    done = [job.is_done(u) for u in units]  # markers on disk: looked up once per unit
    todo = [u for u, finished in zip(units, done, strict=True) if not finished]
    skipped = [job.unit_id(u) for u, finished in zip(units, done, strict=True) if finished]
    status: dict[str, list] = {"done": [], "skipped": skipped, "failed": []}
    bar = tqdm(total=len(todo), desc=f"infer (rank {info.rank})" if info.world_size > 1 else "infer",
               unit=job.noun, position=info.rank, disable=None if progress else True, dynamic_ncols=True)
    processed = []
    try:
        for unit, loaded, error in prefetch(todo, job.load, workers):
            try:
                if error is not None:
                    raise error
                job.process(unit, loaded)
                processed.append(unit)
            except Exception as err:  # noqa: BLE001 - one bad unit must not stop the run
                _fail(job, unit, short_error(err), status)
            bar.update(1)
        late = job.finish()
    finally:
        bar.close()
    for unit in processed:
        if job.unit_id(unit) in late:
            _fail(job, unit, late[job.unit_id(unit)], status)
        else:
            status["done"].append(job.unit_id(unit))
    return status


def _fail(job: Job, unit: Any, message: str, status: dict) -> None:
    logger.error("%s %s (%s) failed: %s", job.noun, job.unit_id(unit), job.unit_path(unit), message)
    status["failed"].append({"case_id": job.unit_id(unit), "path": job.unit_path(unit), "error": message})


def _remove_record(job: Job, out_dir: Path, created_folder: bool) -> None:
    """Undo what a run that finished nothing left: its record and markers (and the folder it created)."""
    (out_dir / RUN_FILE).unlink(missing_ok=True)
    job.clear()
    if created_folder and out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()


def run_job(job: Job, out_dir: Path, record: Mapping, info: DistContext, *, workers: int = 0,
            progress: bool = True, force: bool = False, created_folder: bool = False) -> dict:
    """Run every unit of ``job`` into ``out_dir`` (this rank's share); see the module docstring.

    Args:
        job: the mode's :class:`Job`.
        out_dir: the output folder (exists).
        record: this run's ``run.json`` content.
        info: the distributed context (one process: rank 0 of 1).
        workers: DataLoader workers loading units ahead.
        progress: show progress bars (on a terminal).
        force: recompute finished units (their markers are cleared first).
        created_folder: ``out_dir`` was created by this run (removed again if it stays empty).

    Returns:
        The summary {"total", "done", "skipped", "failed" (list of {case_id, path, error}),
        "out_dir", "all_failed"}, the same on every rank.
    """
    units = job.units()
    wrote_record = _prepare(job, out_dir, record, force, info)
    status = _run_shard(job, shard(units, info), info, workers, progress)
    parts = gather_objects(status, info)
    summary = {
        "total": len(units),
        "done": sum(len(p["done"]) for p in parts),
        "skipped": sum(len(p["skipped"]) for p in parts),
        "failed": [f for p in parts for f in p["failed"]],
        "out_dir": str(out_dir),
    }
    summary["all_failed"] = bool(units) and summary["done"] + summary["skipped"] == 0
    if info.is_main:
        if summary["all_failed"]:
            logger.error("every %s failed (%d); nothing was written to %s", job.noun, len(units), out_dir)
            if wrote_record:
                _remove_record(job, out_dir, created_folder)
        else:
            job.merge(units)
            write_json_atomic(out_dir / SUMMARY_FILE, {k: v for k, v in summary.items() if k != "all_failed"})
    barrier(info)
    return summary
