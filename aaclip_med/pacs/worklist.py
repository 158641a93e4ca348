"""The work list of a ``pacs run``: every series the request resolves to, fixed before any retrieval.

An archive run (thousands of series, days on a few GPUs) must know its whole work before it starts,
so that ranks can split it, progress can be counted against it and a rerun does only what is missing.
The request (study UIDs, series UIDs, a QIDO-RS query) is resolved by series searches read page by
page (:func:`~aaclip_med.pacs.dicomweb.find_series`) into one row per series (Study and Series UID,
Modality, instance count), sorted by Series UID and written atomically to ``OUT/worklist.jsonl``:

- line 1, the header: ``{"worklist": 1, "request": ..., "server": URL (no credentials), "created":
  time, "refreshed": [times], "request_errors": [...], "series": count}``;
- then one JSON row per series.

A rerun into the same folder reuses the stored list (and says so); ``refresh`` searches again and
adds only series that are new. A request other than the stored one is refused, naming both, since
the folder's progress, status and summary are counted against its list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aaclip_med.files import write_text_atomic
from aaclip_med.pacs import dicomweb
from aaclip_med.pacs.errors import SeriesError, ServerError
from aaclip_med.pacs.settings import PAGE_SIZE, DicomWebServer
from aaclip_med.timestamps import utc_timestamp

__all__ = ["WORKLIST_FILE", "WorkItem", "Worklist", "request_of", "describe_request", "read_worklist",
           "write_worklist", "resolve_worklist"]

logger = logging.getLogger(__name__)

WORKLIST_FILE = "worklist.jsonl"
_VERSION = 1


@dataclass(frozen=True)
class WorkItem:
    """One series of the work list (UIDs, Modality, instance count: no patient attribute)."""

    study_uid: str
    series_uid: str
    modality: str = ""
    instances: int = 0
    named: bool = False  # asked for by --series UID: a non-image series is then an error, not passed over

    def as_ref(self) -> dicomweb.SeriesRef:
        return dicomweb.SeriesRef(self.study_uid, self.series_uid, self.modality, self.instances)


@dataclass
class Worklist:
    """The header and rows of ``OUT/worklist.jsonl``."""

    request: dict
    server: str
    items: list[WorkItem]
    created: str
    refreshed: list[str] = field(default_factory=list)
    request_errors: list[dict] = field(default_factory=list)

    def header(self) -> dict:
        return {"worklist": _VERSION, "request": self.request, "server": self.server, "created": self.created,
                "refreshed": self.refreshed, "request_errors": self.request_errors, "series": len(self.items)}


def request_of(studies: Sequence[str], series: Sequence[str], filters: Mapping[str, str] | None) -> dict:
    """What a run asked for, as stored and compared (query values on patient attributes redacted)."""
    return {"studies": sorted(set(studies)), "series": sorted(set(series)),
            "query": dicomweb.redacted_query(filters) if filters else None}


def describe_request(request: Mapping) -> str:
    """``query Modality=CT&StudyDate=...``, ``study 1.2...``, ``series 1.2...`` joined by ", "."""
    parts = [f"study {uid}" for uid in request.get("studies") or []]
    parts += [f"series {uid}" for uid in request.get("series") or []]
    if request.get("query"):
        parts.append(f"query {request['query']}")
    return ", ".join(parts) or "nothing"


def read_worklist(path: Path) -> Worklist | None:
    """The work list stored at ``path``, or None when there is none.

    Raises:
        ValueError: the file is not a work list of aaclip-med (named, with what to do).
    """
    if not path.is_file():
        return None
    try:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        header = lines[0]
        if header.get("worklist") != _VERSION:
            raise ValueError("no work list header")
        items = [WorkItem(str(r["study_uid"]), str(r["series_uid"]), str(r.get("modality") or ""),
                          int(r.get("instances") or 0), bool(r.get("named"))) for r in lines[1:]]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a work list of aaclip-med pacs ({err}); move it away to search again") from err
    return Worklist(dict(header["request"]), str(header.get("server", "")), items, str(header.get("created", "")),
                    list(header.get("refreshed") or []), list(header.get("request_errors") or []))


def write_worklist(path: Path, worklist: Worklist) -> None:
    """Write the list atomically, rows sorted by Series Instance UID."""
    worklist.items.sort(key=lambda item: item.series_uid)
    rows = [json.dumps(worklist.header())]
    rows += [json.dumps({"study_uid": i.study_uid, "series_uid": i.series_uid, "modality": i.modality,
                         "instances": i.instances, **({"named": True} if i.named else {})}) for i in worklist.items]
    write_text_atomic(path, "\n".join(rows) + "\n")


def _search(server: DicomWebServer, client, request: Mapping, filters: Mapping[str, str] | None,
            page_size: int) -> tuple[list[WorkItem], list[dict]]:
    """Every series of the request, each once (named by UID wins), and the requests that found nothing."""
    found: dict[str, WorkItem] = {}
    errors: list[dict] = []
    searches = [(f"study {uid}", {"study_uid": uid}, False) for uid in request["studies"]]
    searches += [(f"series {uid}", {"series_uid": uid}, True) for uid in request["series"]]
    if filters:
        searches.append((f"query {request['query']}", {"filters": filters}, False))
    for what, query, named in searches:
        try:
            refs = dicomweb.find_series(server, client, page_size=page_size, **query)
        except SeriesError as err:  # a search that failed: a list without its series would be silently short
            raise ServerError(f"cannot build the work list: {err}") from err
        if not refs:
            message = f"{what}: no series on {server.display}"
            logger.error("%s", message)
            errors.append({"request": what, "error": message})
        for ref in refs:
            item = WorkItem(ref.study_uid, ref.series_uid, ref.modality, ref.instances, named)
            if named or ref.series_uid not in found:
                found[ref.series_uid] = item
    return list(found.values()), errors


def resolve_worklist(out_dir: Path, server: DicomWebServer, client, request: dict,
                     filters: Mapping[str, str] | None, *, refresh: bool = False,
                     page_size: int = PAGE_SIZE) -> Worklist:
    """The run's work list: the stored one, or a new search (written to ``OUT/worklist.jsonl``).

    Args:
        out_dir: the output folder.
        server, client: the DICOMweb service and its client.
        request: :func:`request_of` of this run.
        filters: the parsed query (its values unredacted, for the search itself).
        refresh: search again and add the series that are new to the stored list.
        page_size: QIDO-RS ``limit`` of one page.

    Raises:
        ValueError: the folder holds the work list of another request (both named).
        ServerError: a search failed (nothing is stored: a list missing its series would be short).
    """
    path = out_dir / WORKLIST_FILE
    stored = read_worklist(path)
    if stored is not None and stored.request != request:
        raise ValueError(f"{out_dir} holds the run of {describe_request(stored.request)}; this run asks for "
                         f"{describe_request(request)}; use another --out, or the same request to resume")
    if stored is not None and stored.server != server.display:
        logger.warning("the work list in %s was searched on %s; this run stores to %s", out_dir, stored.server,
                       server.display)
    if stored is not None and not refresh:
        logger.info("reusing the work list of %s (%s): %d series; --refresh-query searches again for new ones",
                    describe_request(request), stored.created, len(stored.items))
        return stored
    items, errors = _search(server, client, request, filters, page_size)
    if stored is None:
        worklist = Worklist(request, server.display, items, utc_timestamp(), [], errors)
        logger.info("work list of %s: %d series (%d instances)", describe_request(request), len(items),
                    sum(i.instances for i in items))
    else:
        known = {item.series_uid for item in stored.items}
        new = [item for item in items if item.series_uid not in known]
        worklist = Worklist(request, stored.server, stored.items + new, stored.created,
                            [*stored.refreshed, utc_timestamp()], errors)
        logger.info("work list of %s refreshed: %d new series, %d in all", describe_request(request), len(new),
                    len(worklist.items))
    if worklist.items or stored is not None:  # a request that matched nothing is searched again next time
        write_worklist(path, worklist)
    return worklist
