"""DICOMweb side: QIDO-RS search, WADO-RS retrieve into a folder, STOW-RS store, with bounded retries.

Built on ``dicomweb-client``. Every request goes through :func:`_attempt`, which retries a refused
connection, a timeout and HTTP 429/502/503/504 (``server.retries`` times, waiting ``backoff``,
doubled each time) and turns every failure into one line naming the server and the study/series:

- unreachable / timed out / TLS -> :class:`ServerError` (the run cannot go on);
- HTTP 401/403 -> :class:`ServerError` saying where the credentials come from;
- an answer that is not DICOM JSON or DICOM -> :class:`ServerError` (wrong URL?);
- another HTTP error on one series -> :class:`SeriesError` (the run goes on).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar
from urllib.parse import parse_qsl

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.errors import InvalidDicomError

from aaclip_med.errors import ParameterError
from aaclip_med.files import atomic_path
from aaclip_med.inference.errors import one_line, short_error
from aaclip_med.packages import require
from aaclip_med.pacs.errors import PacsError, SeriesError, ServerError
from aaclip_med.pacs.settings import ENV_PASSWORD, ENV_TOKEN, ENV_USER, PAGE_SIZE, DicomWebServer
from aaclip_med.pacs.state import instance_name

__all__ = ["SeriesRef", "connect", "parse_query", "redacted_query", "find_series", "sop_class_of", "retrieve_series",
           "store_files"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_RETRY_STATUS = (408, 429, 502, 503, 504)


class SeriesRef(NamedTuple):
    """A series found on the server (UIDs, modality and instance count only: no patient attribute)."""

    study_uid: str
    series_uid: str
    modality: str
    instances: int = 0


_INSTANCES_TAG = "00201209"  # NumberOfSeriesRelatedInstances


def _import_client():
    dicomweb_client = require("dicomweb_client", "DICOMweb")
    import requests  # a dependency of dicomweb-client

    return dicomweb_client, requests


def connect(server: DicomWebServer):
    """A ``DICOMwebClient`` for ``server`` (authentication, TLS, timeout; its own retries off: ours count)."""
    dicomweb_client, requests = _import_client()
    session = requests.Session()
    creds = server.credentials
    if creds.token:
        session.headers["Authorization"] = f"Bearer {creds.token}"
    elif creds.password:
        session.auth = (creds.user, creds.password)
    if not server.verify_tls:
        logger.warning("TLS certificate checks are OFF for %s (--insecure): use only on a test server", server.display)
        session.verify = False
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    elif server.ca_bundle:
        session.verify = server.ca_bundle
    client = dicomweb_client.DICOMwebClient(server.url, session=session, timeout=server.timeout)
    client.set_http_retry_params(retry=False)
    logger.info("DICOMweb server %s (credentials: %s)", server.display, creds.source)
    return client


def _auth_hint(server: DicomWebServer) -> str:
    if server.credentials.source == "none":
        return f"no credentials were given: set {ENV_USER} and {ENV_PASSWORD}, or {ENV_TOKEN} (or --password-file/--token-file)"
    return f"check the credentials from {server.credentials.source}"


def _connection_reason(err: Exception, server: DicomWebServer) -> str:
    _, requests = _import_client()
    if isinstance(err, requests.exceptions.SSLError):
        return f"TLS failed ({one_line(str(err), 120)}); pass --ca-bundle FILE with the server's CA"
    if isinstance(err, requests.exceptions.Timeout):
        return f"no answer within {server.timeout:g} s"
    text = str(err)
    return "connection refused" if "refused" in text.lower() else one_line(text, 160)


def _short_reason(err: Exception, server: DicomWebServer) -> str:
    _, requests = _import_client()
    if isinstance(err, requests.exceptions.HTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code} {err.response.reason}"
    return _connection_reason(err, server)


def _translate(err: Exception, server: DicomWebServer, what: str) -> PacsError:
    """One-line error of a failed request about ``what`` (e.g. "series 1.2.3")."""
    _, requests = _import_client()
    url = server.display
    if isinstance(err, requests.exceptions.HTTPError) and err.response is not None:
        code, reason = err.response.status_code, err.response.reason
        if code in (401, 403):
            return ServerError(f"{what}: {url} refused the request (HTTP {code} {reason}); {_auth_hint(server)}")
        hint = " (unknown UID, or --url is not the DICOMweb root)" if code == 404 else ""
        return SeriesError(f"{what}: {url} answered HTTP {code} {reason}{hint}")
    if isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        tries = server.retries + 1
        return ServerError(f"{what}: cannot reach {url}: {_connection_reason(err, server)} "
                           f"(after {tries} attempt{'s' if tries > 1 else ''}); is the server up and --url right?")
    if isinstance(err, (json.JSONDecodeError, InvalidDicomError, ValueError, KeyError, EOFError)):
        return ServerError(f"{what}: {url} returned something that is not DICOM ({one_line(str(err), 160)}); "
                           "is --url the DICOMweb root, e.g. http://host:8042/dicom-web?")
    return SeriesError(f"{what}: {short_error(err, 200)}")


def _retriable(err: Exception) -> bool:
    _, requests = _import_client()
    if isinstance(err, requests.exceptions.SSLError):
        return False
    if isinstance(err, requests.exceptions.HTTPError):
        return err.response is not None and err.response.status_code in _RETRY_STATUS
    return isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def _attempt(server: DicomWebServer, what: str, call: Callable[[], T]) -> T:
    """``call()`` with bounded retries; failures become :class:`PacsError` (see module docstring)."""
    wait = server.backoff
    for attempt in range(server.retries + 1):
        try:
            return call()
        except PacsError:
            raise
        except Exception as err:  # noqa: BLE001 - translated below, never swallowed
            if attempt < server.retries and _retriable(err):
                logger.warning("%s: %s; retry %d of %d in %.1f s", what, _short_reason(err, server), attempt + 1,
                               server.retries, wait)
                time.sleep(wait)
                wait *= 2
                continue
            raise _translate(err, server, what) from err
    raise AssertionError("unreachable")  # pragma: no cover


def parse_query(query: str | Mapping[str, str]) -> dict[str, str]:
    """``'Modality=MR&StudyDate=20240101-20240131'`` -> QIDO filters (DICOM keywords or 8-hex-digit tags).

    Raises:
        ValueError: empty, or a key that is neither a DICOM keyword nor a tag.
    """
    pairs = dict(query) if isinstance(query, Mapping) else dict(parse_qsl(query, keep_blank_values=False))
    if not pairs:
        raise ParameterError("query", query, "holds no KEY=VALUE filter, e.g. 'Modality=MR&StudyDate=20240101-20240131'")
    for key in pairs:
        is_tag = len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key)
        if not is_tag and tag_for_keyword(key) is None:
            raise ParameterError("query", query, f"key {key!r} is not a DICOM keyword (e.g. Modality, StudyDate, "
                                 "StudyInstanceUID, SeriesDescription) or tag (e.g. 00080060)")
    return pairs


_IDENTIFYING = ("Patient", "OtherPatient", "IssuerOfPatient", "AccessionNumber", "ReferringPhysician", "0010")


def redacted_query(filters: Mapping[str, str]) -> str:
    """The filters as ``K=V&...`` for logs and run records, patient/accession values replaced by ``*``."""
    return "&".join(f"{k}={'*' if k.startswith(_IDENTIFYING) else v}" for k, v in filters.items())


def _value(item: Mapping, tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


def _count(item: Mapping) -> int:
    try:
        return int(_value(item, _INSTANCES_TAG) or 0)
    except ValueError:
        return 0


def find_series(
    server: DicomWebServer, client, study_uid: str | None = None, series_uid: str | None = None,
    filters: Mapping[str, str] | None = None, page_size: int = PAGE_SIZE,
) -> list[SeriesRef]:
    """QIDO-RS series search: the series of a study, one series by UID, or those matching ``filters``.

    Read page by page (``limit``/``offset``) until the server returns an empty page, so an answer
    larger than the server's own page limit is read whole; each series once, in the server's order.
    """
    search = dict(filters or {})
    if series_uid:
        search["SeriesInstanceUID"] = series_uid
    what = (f"series {series_uid}" if series_uid else f"study {study_uid}" if study_uid
            else f"query {redacted_query(search)}")
    refs: dict[str, SeriesRef] = {}
    offset = 0
    while True:
        page = _attempt(server, what, lambda o=offset: client.search_for_series(
            study_instance_uid=study_uid, search_filters=search or None, fields=[_INSTANCES_TAG],
            limit=page_size, offset=o, get_remaining=False))
        if not isinstance(page, list) or not all(isinstance(item, Mapping) for item in page):
            raise ServerError(f"{what}: {server.display} answered a QIDO-RS search with something that is not DICOM JSON")
        if not page:
            break
        before = len(refs)
        for item in page:
            ref = SeriesRef(_value(item, "0020000D") or (study_uid or ""), _value(item, "0020000E"),
                            _value(item, "00080060"), _count(item))
            if ref.series_uid:
                refs.setdefault(ref.series_uid, ref)
        if offset and len(refs) == before:  # the same rows again: the server ignores offset
            if offset >= page_size:
                raise ServerError(f"{what}: {server.display} ignores the QIDO-RS offset, so a search of more than "
                                  f"{page_size} series cannot be read whole; narrow the query (e.g. by StudyDate)")
            break
        offset += len(page)
        logger.debug("%s: %d series after %d row(s)", what, len(refs), offset)
    return list(refs.values())


def _save_instance(ds: pydicom.Dataset, folder: Path) -> Path:
    path = folder / instance_name(str(ds.SOPInstanceUID))
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path


def retrieve_series(server: DicomWebServer, client, ref: SeriesRef, folder: Path) -> list[Path]:
    """WADO-RS: every instance of ``ref`` into ``folder`` (one file per instance, named by a hash of its UID)."""
    folder.mkdir(parents=True, exist_ok=True)

    def fetch() -> list[Path]:
        return [_save_instance(ds, folder) for ds in client.iter_series(ref.study_uid, ref.series_uid)]

    paths = _attempt(server, f"series {ref.series_uid}", fetch)
    if not paths:
        raise SeriesError(f"series {ref.series_uid}: {server.display} returned no instance")
    logger.info("series %s: retrieved %d instance(s)", ref.series_uid, len(paths))
    return paths


def _failed_instances(response) -> list[str]:
    failed = getattr(response, "FailedSOPSequence", None) or []
    return [f"{getattr(item, 'ReferencedSOPInstanceUID', '?')} (reason 0x{int(getattr(item, 'FailureReason', 0)):04X})"
            for item in failed]


def store_files(server: DicomWebServer, client, files: Sequence[Path], what: str) -> list[str]:
    """STOW-RS ``files`` in one request; returns their SOP Instance UIDs.

    Raises:
        SeriesError: the server refused some instance (their UIDs and reasons are named).
    """
    datasets = [pydicom.dcmread(str(path)) for path in files]
    response = _attempt(server, what, lambda: client.store_instances(datasets))
    failed = _failed_instances(response)
    if failed:
        raise SeriesError(f"{what}: {server.display} refused to store {', '.join(failed)}")
    return [str(ds.SOPInstanceUID) for ds in datasets]


def sop_class_of(server: DicomWebServer, client, ref: SeriesRef) -> str | None:
    """SOP Class UID of the series' first instance (QIDO-RS), to leave non-image series on the server."""
    found = _attempt(server, f"series {ref.series_uid}", lambda: client.search_for_instances(
        ref.study_uid, ref.series_uid, limit=1, fields=["SOPClassUID"]))
    return (_value(found[0], "00080016") or None) if found else None
