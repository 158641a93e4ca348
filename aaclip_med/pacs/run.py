"""``pacs run``: find series on a DICOMweb server, retrieve, infer, store the SEG / Parametric Map back.

Series come from study UIDs (all their series), series UIDs, or a QIDO-RS query. Each is handled
by :class:`~aaclip_med.pacs.processing.SeriesProcessor`; a bad series is logged with its UID and the
others go on, while a server that cannot be used (down, refusing the credentials, not DICOMweb)
stops the run with one line. Re-running with the same ``out_dir`` skips the series already stored
and stores those inferred but not yet stored (nothing is inferred or stored twice).

Besides the per-series outputs, ``OUT/pacs_run.json`` records the run: server, request (patient
values of a query redacted), inference settings, model identity, and each series' status by UID.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import nn

from aaclip_med.files import write_json_atomic
from aaclip_med.inference.options import InferenceOptions
from aaclip_med.inference.run_info import run_record
from aaclip_med.pacs import dicomweb
from aaclip_med.pacs.errors import NotAnImageSeries, SeriesError
from aaclip_med.pacs.processing import SeriesProcessor
from aaclip_med.pacs.series import is_image_sop_class
from aaclip_med.pacs.settings import DicomWebServer
from aaclip_med.pacs.state import series_key

__all__ = ["run_pacs", "RUN_RECORD"]

logger = logging.getLogger(__name__)

RUN_RECORD = "pacs_run.json"


def _search(server, client, what: str, failed: list[dict], **query) -> list[dicomweb.SeriesRef]:
    """Series of one request; a study/series that is absent or refused is recorded, the run goes on."""
    try:
        refs = dicomweb.find_series(server, client, **query)
    except SeriesError as err:
        logger.error("%s", err)
        failed.append({"request": what, "error": str(err)})
        return []
    if not refs:
        message = f"{what}: no series on {server.display}"
        logger.error("%s", message)
        failed.append({"request": what, "error": message})
    return refs


def _targets(server, client, studies, series, filters, failed: list[dict]) -> list[tuple[dicomweb.SeriesRef, bool]]:
    """(series, named by UID) to process, each once, in request order."""
    targets: dict[str, tuple[dicomweb.SeriesRef, bool]] = {}
    for uid in studies:
        for ref in _search(server, client, f"study {uid}", failed, study_uid=uid):
            targets.setdefault(ref.series_uid, (ref, False))
    for uid in series:
        for ref in _search(server, client, f"series {uid}", failed, series_uid=uid):
            targets[ref.series_uid] = (ref, True)
    if filters:
        for ref in _search(server, client, f"query {dicomweb.redacted_query(filters)}", failed, filters=filters):
            targets.setdefault(ref.series_uid, (ref, False))
    return list(targets.values())


def _fetcher(server, client, ref: dicomweb.SeriesRef, folder: Path):
    def fetch() -> None:
        sop_class = dicomweb.sop_class_of(server, client, ref)
        if sop_class and not is_image_sop_class(sop_class):
            from pydicom.uid import UID

            raise NotAnImageSeries(f"series {ref.series_uid}: not an image series ({UID(sop_class).name}, "
                                   f"Modality {ref.modality or '?'})")
        dicomweb.retrieve_series(server, client, ref, folder)

    return fetch


def _process(processor: SeriesProcessor, server, client, ref: dicomweb.SeriesRef, named: bool) -> dict:
    key = series_key(ref.series_uid)
    before = processor.state.status(key)
    status = processor.process(key, ref.series_uid, _fetcher(server, client, ref, processor.incoming(key)), named)
    record = processor.state.get(key) or {}
    return {"key": key, "study_uid": ref.study_uid, "series_uid": ref.series_uid,
            "status": "skipped" if before in ("done", "ignored") else status,
            "error": record.get("error"), "stored": record.get("stored", [])}


def _record(processor: SeriesProcessor, server: DicomWebServer, model, request: dict,
            results: list[dict], failed: list[dict]) -> dict:
    from aaclip_med.inference.api import references_record

    options = processor.options
    # the calibration: "calibrated" below; the reference memory (loaded once): its file, sha256 and weight
    settings = dataclasses.asdict(options.replace(calibration=None, references=None, reference_weight=None))
    for name in ("calibration", "descriptions", "references"):
        settings.pop(name)
    settings |= references_record(options)
    counts = {s: sum(r["status"] == s for r in results) for s in ("done", "skipped", "failed", "ignored")}
    counts["failed"] += len(failed)
    record = {"command": "pacs run", "server": server.display, "credentials": server.credentials.source,
              "request": request, "options": settings, "calibrated": options.calibration is not None,
              "model": run_record(model, options.weights, {}), "series": results, "request_errors": failed,
              "counts": counts, "out_dir": str(processor.out_dir)}
    write_json_atomic(processor.out_dir / RUN_RECORD, record)
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
) -> dict:
    """Retrieve series from a DICOMweb server, run inference, store DICOM SEG / Parametric Map back.

    Args:
        server: the DICOMweb service (URL, credentials, TLS, timeout, retries).
        model: the network (e.g. from ``load_adapters``), used for every series.
        out_dir: the only folder written to (layout in ``processing.py``).
        studies: Study Instance UIDs; every series of each is processed.
        series: Series Instance UIDs.
        query: QIDO-RS series filters, ``"Modality=MR&StudyDate=20240101-20240131"`` or a mapping.
        options: inference settings (default :class:`~aaclip_med.inference.InferenceOptions`;
            ``threshold`` is needed for a SEG), checked before any series is touched.
        keep_sources: keep the retrieved instances in ``OUT/incoming`` after storing.

    Returns:
        The run record written to ``OUT/pacs_run.json``: ``counts`` {done, skipped, failed,
        ignored}, ``series`` (key, UIDs, status, error, stored SOP Instance UIDs) and
        ``request_errors`` (studies/series not found).

    Raises:
        ServerError: the server is unreachable, refuses the credentials or is not DICOMweb.
        ValueError: nothing requested, or a malformed query.
    """
    filters = dicomweb.parse_query(query) if query else None
    if not (studies or series or filters):
        raise ValueError("give --study UID, --series UID or --query FILTERS")
    client = dicomweb.connect(server)
    processor = SeriesProcessor(model, options, out_dir, lambda files, what: dicomweb.store_files(server, client, files, what),
                                keep_sources)
    failed: list[dict] = []
    results: list[dict] = []
    request = {"studies": list(studies), "series": list(series),
               "query": dicomweb.redacted_query(filters) if filters else None}
    try:
        for ref, named in _targets(server, client, list(studies), list(series), filters, failed):
            results.append(_process(processor, server, client, ref, named))
    finally:  # the record is written even when the server goes away mid-run
        record = _record(processor, server, model, request, results, failed)
    logger.info("pacs run: %s", ", ".join(f"{k} {v}" for k, v in record["counts"].items()))
    return record
