"""Cohort runs over files and folders: resumable, sharded across ranks, failures isolated.

For every case the outputs of ``case_outputs.py`` are written, then a done-marker
``.done/<case>.json`` (holding the case's score rows) is written last. A re-run skips cases with
a marker and removes temporary files an interrupted run left behind. A case that fails is logged
with its error (naming the file) and the run goes on. At the end, rank 0 writes the merged score
tables (``scores_slices.csv``, ``scores_cases.csv``, ``scores.json``) and ``summary.json``
({done, skipped, failed, total}).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from aaclip_med.data.loading import load_image
from aaclip_med.distributed import DistContext, barrier, gather_objects, shard
from aaclip_med.files import TMP_PREFIX, remove_stale_temporaries
from aaclip_med.inference.calibration import Calibration
from aaclip_med.inference.case_outputs import OutputOptions, score_rows, write_case_outputs
from aaclip_med.inference.errors import short_error
from aaclip_med.inference.predictor import Predictor
from aaclip_med.inference.prefetch import prefetch
from aaclip_med.inference.sources import Case
from aaclip_med.inference.volume import predict_case
from aaclip_med.inference.writers import write_json, write_score_tables

__all__ = ["CohortSettings", "run_cohort", "load_case", "DONE_DIR"]

logger = logging.getLogger(__name__)

DONE_DIR = ".done"


@dataclass(frozen=True)
class CohortSettings:
    """Per-run choices shared by every case."""

    class_name: str
    description: str
    options: OutputOptions
    calibration: Calibration | None = None
    workers: int = 0


def load_case(case: Case):
    """Load one case's source (module-level so DataLoader workers can pickle it).

    A DICOM series, even of one file, goes through the series reader, which keeps its geometry.
    """
    if case.kind == "dicom_series":
        return load_image(case.path, series_uid=case.series_uid)
    return load_image(case.path)


def _marker(out_dir: Path, case: Case) -> Path:
    return out_dir / DONE_DIR / f"{case.case_id}.json"


def _process(predictor: Predictor, case: Case, image, out_dir: Path, settings: CohortSettings) -> None:
    result = predict_case(predictor, image, settings.description)
    calibration = settings.calibration.get(settings.class_name) if settings.calibration else None
    rows = score_rows(case, result, calibration, settings.class_name)
    # outputs go to a staging folder first: a case failing half-way leaves nothing under final names
    staging = out_dir / f"{TMP_PREFIX}{case.case_id}"
    try:
        written = write_case_outputs(case, image, result, staging, settings.options, rows)
        for path in written:
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # the marker is written last: its presence means every output above is complete
    write_json(_marker(out_dir, case), {"case": rows[0], "slices": rows[1], "files": [p.name for p in written]})


def _run_shard(predictor: Predictor, cases: list[Case], out_dir: Path, settings: CohortSettings, info: DistContext) -> dict:
    status = {"done": [], "skipped": [], "failed": []}
    todo = [c for c in cases if not _marker(out_dir, c).is_file()]
    status["skipped"] = [c.case_id for c in cases if c not in todo]
    bar = tqdm(total=len(todo), desc=f"infer (rank {info.rank})" if info.world_size > 1 else "infer",
               unit="case", position=info.rank, disable=None)
    for case, image, error in prefetch(todo, load_case, settings.workers):
        try:
            if error is not None:
                raise error
            _process(predictor, case, image, out_dir, settings)
            status["done"].append(case.case_id)
        except Exception as err:  # noqa: BLE001 - one bad case must not stop the cohort
            message = short_error(err)
            logger.error("case %s (%s) failed: %s", case.case_id, case.path, message)
            status["failed"].append({"case_id": case.case_id, "path": str(case.path), "error": message})
        bar.update(1)
    bar.close()
    return status


def _merge_tables(out_dir: Path, cases: list[Case]) -> None:
    case_rows, slice_rows = [], []
    for case in cases:
        marker = _marker(out_dir, case)
        if marker.is_file():
            record = json.loads(marker.read_text(encoding="utf-8"))
            case_rows.append(record["case"])
            slice_rows += record["slices"]
    write_score_tables(out_dir, slice_rows, case_rows)


def run_cohort(predictor: Predictor, cases: list[Case], out_dir: Path, settings: CohortSettings, info: DistContext) -> dict:
    """Process this rank's share of ``cases``; rank 0 merges tables and writes ``summary.json``.

    Returns:
        The summary {"done", "skipped", "failed" (list of {case_id, path, error}), "total", ...}
        (the same on every rank).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if info.is_main:
        removed = remove_stale_temporaries(out_dir)
        if removed:
            logger.info("removed %d temporary file(s) left by an interrupted run", removed)
    barrier(info)
    status = _run_shard(predictor, shard(cases, info), out_dir, settings, info)
    parts = gather_objects(status, info)
    summary = {
        "total": len(cases),
        "done": sum(len(p["done"]) for p in parts),
        "skipped": sum(len(p["skipped"]) for p in parts),
        "failed": [f for p in parts for f in p["failed"]],
        "out_dir": str(out_dir),
    }
    if info.is_main:
        _merge_tables(out_dir, cases)
        write_json(out_dir / "summary.json", summary)
    barrier(info)
    return summary
