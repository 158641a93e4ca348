"""``pacs run``: a work list of series from a DICOMweb server, shared over torchrun ranks, results stored back.

One process or many (``torchrun --nproc-per-node N``, ``torchrun --nnodes M`` with a shared output
folder), the same steps:

1. rank 0 checks the folder (a run made with other settings is refused, each differing field
   named), resolves the request to the work list (:mod:`~aaclip_med.pacs.worklist`), leaves out
   the series already done and splits the rest over the ranks by instance count
   (:mod:`~aaclip_med.pacs.shares`); every rank receives the same plan from it (torch.distributed);
2. each rank works through its share alone: series retrieved one at a time (WADO-RS), the next
   one retrieved while the current one is inferred, each result written atomically and stored
   (STOW-RS) under UIDs derived from the source series and the run's identity
   (:mod:`~aaclip_med.pacs.uids`), so storing again replaces; a bad series is recorded with its
   reason and the rank goes on; ``OUT/status/rank-<N>.json`` is rewritten after each series;
3. the last rank to finish merges every rank's outcome into ``OUT/pacs_run.json`` (counts, each
   failure with its reason, throughput).

A series is done when its outputs exist and its record (``OUT/state/<key>.json``) says they were
stored. A rerun after a crash or a killed rank (on any number of ranks) does only what is not done;
ranks do not wait for each other between series, so one slow series holds up no other rank.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from torch import nn

from aaclip_med import identity
from aaclip_med.distributed import DistContext, gather_objects, init_distributed, shutdown_distributed
from aaclip_med.errors import ParameterError
from aaclip_med.files import remove_stale_temporaries, write_json_atomic
from aaclip_med.inference.options import InferenceOptions
from aaclip_med.inference.run_info import run_record
from aaclip_med.pacs import dicomweb
from aaclip_med.pacs.errors import NotAnImageSeries, PacsError, ServerError
from aaclip_med.pacs.processing import SeriesProcessor, output_files
from aaclip_med.pacs.progress import RankProgress, read_rank_status
from aaclip_med.pacs.series import is_image_sop_class
from aaclip_med.pacs.settings import PAGE_SIZE, DicomWebServer
from aaclip_med.pacs.shares import balanced_shares
from aaclip_med.pacs.state import FINISHED, series_key
from aaclip_med.pacs.worklist import WorkItem, describe_request, request_of, resolve_worklist
from aaclip_med.timestamps import utc_timestamp

__all__ = ["run_pacs", "RUN_RECORD", "EXIT_NOTHING_MATCHED", "run_identity", "overall_counts"]

logger = logging.getLogger(__name__)

RUN_RECORD = "pacs_run.json"
EXIT_NOTHING_MATCHED = 3  # the request matched no series: nothing to do (documented in docs/pacs.md)
_ERRORS = {"ValueError": ValueError, "ServerError": ServerError}


def run_identity(processor: SeriesProcessor, model: nn.Module) -> dict:
    """What this run's outputs depend on (:data:`~aaclip_med.identity.OUTPUT_FIELDS`), as ``pacs_run.json`` keeps it."""
    from aaclip_med.inference.api import calibration_from_model, output_settings

    options = processor.options  # dicom=True: the processor always writes DICOM
    calibration = options.calibration or calibration_from_model(model)
    settings = output_settings(options, calibration, options.domain, options.precision)
    settings |= {"class_name": options.resolved_class, "description": options.description}
    return run_record(model, options.weights, settings)


def _settings_record(options: InferenceOptions) -> dict:
    from aaclip_med.inference.api import references_record

    settings = dataclasses.asdict(options.replace(calibration=None, references=None, reference_weight=None,
                                                  reference_search="auto"))
    for name in ("calibration", "descriptions", "references", "reference_search"):  # the search: in references
        settings.pop(name)
    return settings | references_record(options)


def _claim(out_dir: Path, model_identity: Mapping) -> dict:
    """The folder's run record, checked against this run's identity (refused when the outputs would differ)."""
    import json

    path = out_dir / RUN_RECORD
    if not path.is_file():
        return {}
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({err}); choose a new --out") from err
    found = identity.differences(stored.get("model") or {}, model_identity, identity.OUTPUT_FIELDS,
                                 what="the folder's run", harmless=identity.HARMLESS_FIELDS)
    if found.refused:
        raise ValueError(f"{out_dir} holds a run made with other settings ({'; '.join(found.refused)}); "
                         "rerun with the same settings to resume, or choose a new --out")
    for line in found.warned:
        logger.warning("resuming into %s although %s (the same content, so the outputs match)", out_dir, line)
    if found.unknown:
        logger.warning("resuming into %s: its %s does not record %s, which cannot be checked", out_dir, RUN_RECORD,
                       ", ".join(found.unknown))
    return stored


def _is_done(processor: SeriesProcessor, item: WorkItem) -> bool:
    """Done: its record says stored (or not an image series) and its outputs are all there."""
    key = series_key(item.series_uid)
    record = processor.state.get(key) or {}
    if record.get("status") not in FINISHED:
        return False
    return record["status"] == "ignored" or len(output_files(processor.results(key), key)) >= len(record["outputs"])


def _live_ranks(out_dir: Path) -> list[dict]:
    """Ranks of an earlier run still alive on this host (another host's processes cannot be checked)."""
    import socket

    from aaclip_med.pacs.progress import process_state

    return [r for r in read_rank_status(out_dir) if r.get("host") == socket.gethostname()
            and process_state(r) == "running" and r.get("pid") != os.getpid()]


def _plan(processor: SeriesProcessor, server, client, model, request: dict, filters, refresh: bool,
          page_size: int, info: DistContext, base: dict) -> dict:
    """Rank 0: folder checked, work list resolved, what is left split over the ranks."""
    out_dir = processor.out_dir
    live = _live_ranks(out_dir)
    if live:
        r = live[0]
        raise ValueError(f"{out_dir} is in use by a running pacs run (rank {r['rank']}, pid {r['pid']} on "
                         f"{r['host']}); wait for it, or stop it before starting another")
    removed = remove_stale_temporaries(out_dir)
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run", removed)
    model_identity = run_identity(processor, model)
    stored = _claim(out_dir, model_identity)
    worklist = resolve_worklist(out_dir, server, client, request, filters, refresh=refresh, page_size=page_size)
    todo = [item for item in worklist.items if not _is_done(processor, item)]
    for item in todo:
        key = series_key(item.series_uid)
        if processor.state.status(key) in FINISHED:  # recorded as stored, but its outputs are gone: redo it
            logger.warning("series %s: recorded as stored but its outputs in %s are missing; processing it again",
                           item.series_uid, processor.results(key))
            processor.state.update(key, status="redo", error="outputs missing")
    run_id = uuid.uuid4().hex[:12]
    record = {**stored, **base, "model": model_identity, "run_id": run_id, "world_size": info.world_size,
              "started": utc_timestamp(), "finished": None,
              "worklist": len(worklist.items), "request_errors": worklist.request_errors}
    write_json_atomic(out_dir / RUN_RECORD, record)
    shares = balanced_shares(todo, info.world_size)
    if worklist.items:
        logger.info("%s: %d series, %d done before, %d to do on %d rank(s)", describe_request(request),
                    len(worklist.items), len(worklist.items) - len(todo), len(todo), info.world_size)
    return {"run_id": run_id, "shares": [[dataclasses.asdict(i) for i in share] for share in shares],
            "worklist": len(worklist.items), "todo": len(todo)}


def _share_plan(make_plan, info: DistContext) -> dict:
    """Rank 0's plan on every rank; a refusal on rank 0 is raised on every rank (the others would wait)."""
    plan = None
    if info.is_main:
        try:
            plan = make_plan()
        except (ValueError, PacsError) as err:
            plan = {"error": (type(err).__name__, str(err))}
        except Exception as err:  # noqa: BLE001 - raised below on every rank, so none waits forever
            plan = {"error": ("RuntimeError", f"{type(err).__name__}: {err}")}
    plan = gather_objects(plan, info)[0]
    if "error" in plan:
        kind, message = plan["error"]
        raise _ERRORS.get(kind, RuntimeError)(message)
    return plan


def _fetcher(server, client, ref: dicomweb.SeriesRef, folder: Path):
    def fetch() -> None:
        sop_class = dicomweb.sop_class_of(server, client, ref)
        if sop_class and not is_image_sop_class(sop_class):
            from pydicom.uid import UID

            raise NotAnImageSeries(f"series {ref.series_uid}: not an image series ({UID(sop_class).name}, "
                                   f"Modality {ref.modality or '?'})")
        dicomweb.retrieve_series(server, client, ref, folder)

    return fetch


def _work(processor: SeriesProcessor, server, share: Sequence[WorkItem], progress: RankProgress) -> list[dict]:
    """This rank's share, one series at a time, the next one retrieved while the current one computes."""
    results: list[dict] = []
    client = dicomweb.connect(server)  # the retrieving thread's own session: requests' are not thread-safe

    def start(pool: ThreadPoolExecutor, item: WorkItem) -> Future | None:
        key = series_key(item.series_uid)
        record = processor.state.reload(key) or {}  # as rank 0 left it when planning (it may run elsewhere)
        if record.get("status") == "inferred":
            return None  # inferred before a crash: only to be stored, nothing to retrieve
        return pool.submit(_fetcher(server, client, item.as_ref(), processor.incoming(key)))

    with ThreadPoolExecutor(1, thread_name_prefix="pacs-retrieve") as pool:
        upcoming = start(pool, share[0]) if share else None
        for n, item in enumerate(share):
            current, key = upcoming, series_key(item.series_uid)
            upcoming = start(pool, share[n + 1]) if n + 1 < len(share) else None  # overlaps this series' compute
            progress.working_on(item.series_uid)
            record = processor.state.get(key)
            new = {} if record else {"status": "pending", "study_uid": item.study_uid, "series_uid": item.series_uid}
            # who took it up, so an audit can tell that no series was processed twice in one run
            processor.state.update(key, **new, attempts=[*(record or {}).get("attempts", []),
                                                         {"run_id": progress.run_id, "rank": progress.rank}])
            try:
                status = processor.process(key, item.series_uid, current.result if current else None, item.named)
            except PacsError:
                if upcoming is not None:
                    upcoming.cancel()
                raise
            record = processor.state.get(key) or {}
            results.append({"key": key, "study_uid": item.study_uid, "series_uid": item.series_uid,
                            "status": status, "error": record.get("error") if status != "done" else None,
                            "stored": record.get("stored", []) if status == "done" else []})
            progress.add(status, item.series_uid, record.get("error"))
    return results


def overall_counts(out_dir: Path) -> dict[str, int]:
    """The whole work list's state on disk: series, done, failed, ignored, left (any run, any rank)."""
    from aaclip_med.pacs.state import SeriesState
    from aaclip_med.pacs.worklist import WORKLIST_FILE, read_worklist

    worklist = read_worklist(out_dir / WORKLIST_FILE)
    items = worklist.items if worklist else []
    records = SeriesState(out_dir).records()
    statuses = [(records.get(series_key(i.series_uid)) or {}).get("status") for i in items]
    counts = {"series": len(items), **{s: statuses.count(s) for s in ("done", "failed", "ignored")}}
    counts["left"] = counts["series"] - counts["done"] - counts["ignored"]
    return counts


def _merge(out_dir: Path, run_id: str, world_size: int) -> dict | None:
    """The run's record with every rank's outcome, written by the last rank to finish (None: others still work)."""
    import json

    ranks = read_rank_status(out_dir, run_id)
    if len(ranks) < world_size or not all(r.get("finished") for r in ranks):
        return None
    path = out_dir / RUN_RECORD
    record = json.loads(path.read_text(encoding="utf-8"))
    outcome = {r["series_uid"]: r for rank in ranks for r in rank.get("results", [])}
    from aaclip_med.pacs.state import SeriesState
    from aaclip_med.pacs.worklist import WORKLIST_FILE, read_worklist

    worklist = read_worklist(out_dir / WORKLIST_FILE)
    records = SeriesState(out_dir).records()
    series = []
    for item in worklist.items if worklist else []:
        key = series_key(item.series_uid)
        stored = records.get(key) or {}
        if item.series_uid in outcome:
            series.append(outcome[item.series_uid])
        else:  # done by an earlier run, or left by a rank that stopped
            status = "skipped" if stored.get("status") in FINISHED else "not processed"
            series.append({"key": key, "study_uid": item.study_uid, "series_uid": item.series_uid, "status": status,
                           "error": stored.get("error") if status != "skipped" else None,
                           "stored": stored.get("stored", []) if status == "skipped" else []})
    counts = {s: sum(r["status"] == s for r in series) for s in ("done", "skipped", "failed", "ignored", "not processed")}
    counts["failed"] += len(record.get("request_errors") or [])
    processed = sum(r["done"] + r["failed"] + r["ignored"] for r in ranks)
    start = min(datetime.fromisoformat(r["started"]) for r in ranks)
    end = max(datetime.fromisoformat(r["updated"]) for r in ranks)
    hours = max((end - start).total_seconds(), 1.0) / 3600
    record |= {"series": series, "counts": counts, "finished": ranks[-1]["updated"],
               "failures": [{"series_uid": r["series_uid"], "error": r["error"]} for r in series
                            if r["status"] in ("failed", "not processed") and r.get("error")],
               "stopped": [{"rank": r["rank"], "error": r["stopped"]} for r in ranks if r.get("stopped")],
               "throughput": {"series": processed, "wall_s": round(hours * 3600),
                              "series_per_hour": round(processed / hours, 2),
                              "ranks": {str(r["rank"]): r.get("series_per_hour") for r in ranks}}}
    write_json_atomic(path, record)
    return record


def run_pacs(
    server: DicomWebServer,
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    studies: Sequence[str] = (),
    series: Sequence[str] = (),
    query: str | Mapping[str, str] | None = None,
    options: InferenceOptions | None = None,
    keep_sources: bool = False,
    refresh_query: bool = False,
    page_size: int = PAGE_SIZE,
    terminal: bool | None = None,
) -> dict:
    """Resolve the request to a work list, process this rank's share of it, store the results back.

    In one process the whole list is this rank's share; under torchrun every rank calls this with
    the same arguments (see the module docstring).

    Args:
        server: the DICOMweb service (URL, credentials, TLS, timeout, retries).
        model: the network (e.g. from ``load_adapters``), used for every series.
        out_dir: the only folder written to (shared by all ranks; layout in ``processing.py``).
        studies: Study Instance UIDs; every series of each is processed.
        series: Series Instance UIDs.
        query: QIDO-RS series filters, ``"Modality=MR&StudyDate=20240101-20240131"`` or a mapping.
        options: inference settings (default :class:`~aaclip_med.inference.InferenceOptions`;
            ``threshold`` is needed for a SEG), checked before any series is touched.
        keep_sources: keep the retrieved instances in ``OUT/incoming`` after storing.
        refresh_query: search again and add new series to the stored work list.
        page_size: series per QIDO-RS page.
        terminal: print each rank's progress line (default: when stderr is a terminal).

    Returns:
        The run record (``OUT/pacs_run.json``) once every rank has finished: ``counts`` {done,
        skipped, failed, ignored, not processed}, ``series`` (key, UIDs, status, error, stored SOP
        Instance UIDs), ``failures``, ``request_errors``, ``throughput``; on a rank that is not the
        last to finish, ``{"merged": False, "rank", "counts"}`` of its own share. ``worklist`` is 0
        when the request matched nothing.

    Raises:
        ServerError: the server is unreachable, refuses the credentials or is not DICOMweb.
        ValueError: nothing requested, a malformed query, or a folder holding another request's
            or other settings' run.
    """
    filters = dicomweb.parse_query(query) if query else None
    if not (studies or series or filters):
        raise ValueError("nothing requested: give studies, series or query (--study UID, --series UID or --query "
                         "FILTERS)")
    if page_size < 1:
        raise ParameterError("page_size", page_size, "must be >= 1")
    options = options or InferenceOptions()
    created = not Path(out_dir).exists()
    info = init_distributed(options.device)
    try:
        client = dicomweb.connect(server)
        processor = SeriesProcessor(model, options, out_dir,
                                    lambda files, what: dicomweb.store_files(server, client, files, what), keep_sources)
        request = request_of(studies, series, filters)
        base = {"command": "pacs run", "server": server.display, "credentials": server.credentials.source,
                "request": request, "options": _settings_record(processor.options),
                "calibrated": processor.options.calibration is not None, "out_dir": str(processor.out_dir)}
        try:
            plan = _share_plan(lambda: _plan(processor, server, client, model, request, filters, refresh_query,
                                             page_size, info, base), info)
        except (ValueError, PacsError, RuntimeError):
            if created and info.is_main and processor.out_dir.is_dir() and not any(processor.out_dir.iterdir()):
                processor.out_dir.rmdir()  # refused before any work: leave no empty folder behind
            raise
        share = [WorkItem(**row) for row in plan["shares"][info.rank]]
        if not share and plan["todo"] and info.distributed:
            logger.warning("rank %d of %d has nothing to do: %d series to do for %d ranks (start at most %d)",
                           info.rank, info.world_size, plan["todo"], info.world_size, plan["todo"])
        progress = RankProgress(processor.out_dir, plan["run_id"], info.rank, info.world_size, len(share), terminal)
        try:
            results = _work(processor, server, share, progress)
        except PacsError as err:
            progress.stopped = str(err)
            progress.finish()
            _merge(processor.out_dir, plan["run_id"], info.world_size)
            raise
        progress.results = results
        progress.finish()
        merged = _merge(processor.out_dir, plan["run_id"], info.world_size)
        if merged is None:
            return {"merged": False, "rank": info.rank, "world_size": info.world_size, "worklist": plan["worklist"],
                    "counts": dict(progress.counts), "series": results}
        logger.info("pacs run: %s", ", ".join(f"{k} {v}" for k, v in merged["counts"].items()))
        return merged | {"merged": True}
    finally:
        shutdown_distributed(info)
