"""DIMSE side (``pynetdicom``): a C-STORE receiver filing instances by series, and a C-STORE sender.

The receiver writes each instance as it arrives to ``incoming/<series key>/<instance>.dcm``
(atomically, the bytes as received) and notes the time, so that the listener can tell when a
series has been quiet long enough to be complete. It does no inference itself: the association
threads only write files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import pydicom

from aaclip_med.files import atomic_path
from aaclip_med.packages import require
from aaclip_med.pacs.errors import SeriesError, ServerError
from aaclip_med.pacs.settings import DimseNode
from aaclip_med.pacs.state import instance_name, series_key

__all__ = ["SeriesReceiver", "send_files", "import_pynetdicom", "STATUS_SUCCESS"]

logger = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
_STATUS_WARNINGS = (0x0001, 0xB000, 0xB006, 0xB007)
_STATUS_CANNOT_UNDERSTAND = 0xC210
_STATUS_OUT_OF_RESOURCES = 0xA700


def import_pynetdicom():
    """pynetdicom, or an ImportError that says how to install it."""
    return require("pynetdicom", "DIMSE (C-STORE, C-ECHO)")


class SeriesReceiver:
    """C-STORE SCP handler: files received instances by series and tracks when each was last added to.

    Args:
        incoming: folder of the per-series folders.
        on_late: called with (key, SeriesInstanceUID) when an instance arrives for a series the caller
            says is already finished (see ``finished``); the instance is still written.
        finished: tells whether a series key is finished (processed); default never.
    """

    def __init__(self, incoming: Path, finished=None, on_late=None) -> None:
        self.incoming = Path(incoming)
        self._finished = finished or (lambda key: False)
        self._on_late = on_late or (lambda key, uid: None)
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def scan(self) -> None:
        """Track series folders already on disk (after a restart), dated by their newest file."""
        now_wall = time.time()
        for folder in sorted(p for p in self.incoming.glob("s*") if p.is_dir()):
            stamps = [f.stat().st_mtime for f in folder.glob("*.dcm") if not f.name.startswith(".")]
            if stamps:
                self.track(folder.name, age=max(0.0, now_wall - max(stamps)))

    def track(self, key: str, age: float = 0.0) -> None:
        """Track series ``key`` as last added to ``age`` seconds ago (negative: in the future)."""
        with self._lock:
            self._last[key] = time.monotonic() - age

    def handle_store(self, event) -> int:
        """``evt.EVT_C_STORE`` handler; returns the C-STORE status."""
        try:
            ds = event.dataset
            series_uid, sop_uid = str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        except Exception as err:  # noqa: BLE001 - any decoding failure is the sender's problem
            logger.error("refused an instance from %s: cannot read its SeriesInstanceUID/SOPInstanceUID (%s)",
                         event.assoc.requestor.ae_title, type(err).__name__)
            return _STATUS_CANNOT_UNDERSTAND
        key = series_key(series_uid)
        try:
            path = self.incoming / key / instance_name(sop_uid)
            with atomic_path(path) as tmp:
                tmp.write_bytes(event.encoded_dataset(include_meta=True))
        except OSError as err:
            logger.error("series %s: cannot write instance %s (%s)", series_uid, sop_uid, err.strerror or err)
            return _STATUS_OUT_OF_RESOURCES
        with self._lock:
            first = key not in self._last
            self._last[key] = time.monotonic()
        if first:
            logger.info("series %s: receiving (from %s)", series_uid, event.assoc.requestor.ae_title)
        if self._finished(key):
            self._on_late(key, series_uid)
        return STATUS_SUCCESS

    def quiet(self, seconds: float) -> list[str]:
        """Keys of the series that received nothing for ``seconds``, oldest first."""
        now = time.monotonic()
        with self._lock:
            return [k for k, t in sorted(self._last.items(), key=lambda kv: kv[1]) if now - t >= seconds]

    def last(self, key: str) -> float | None:
        """Monotonic time of the last instance of series ``key`` (None when not tracked)."""
        with self._lock:
            return self._last.get(key)

    def forget(self, key: str) -> None:
        """Stop tracking a series (it was processed); a later instance starts tracking it again."""
        with self._lock:
            self._last.pop(key, None)

    def pending(self) -> int:
        with self._lock:
            return len(self._last)

    def pending_keys(self) -> list[str]:
        """Keys of the series tracked (received, not yet processed or not yet forwarded)."""
        with self._lock:
            return sorted(self._last)


def _contexts(datasets: Iterable[pydicom.Dataset]) -> list[tuple[str, str]]:
    pairs = {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}
    return sorted(pairs)


def _associate(node: DimseNode, calling_ae: str, contexts: list[tuple[str, str]], timeout: float):
    pynetdicom = import_pynetdicom()
    ae = pynetdicom.AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
    if not assoc.is_established:
        why = "rejected the association" if assoc.is_rejected else "is unreachable or aborted"
        raise ServerError(f"{node} {why} (calling AE {calling_ae}); is it up and does it know this AE title?")
    return assoc


def _send_all(assoc, node: DimseNode, datasets: Sequence[pydicom.Dataset], what: str) -> list[str]:
    sent = []
    for ds in datasets:
        status = assoc.send_c_store(ds)
        code = int(getattr(status, "Status", -1)) if status else -1
        if code != STATUS_SUCCESS and code not in _STATUS_WARNINGS:
            reason = "no answer" if code < 0 else f"status 0x{code:04X}"
            raise SeriesError(f"{what}: {node} did not store {ds.SOPInstanceUID} ({reason})")
        sent.append(str(ds.SOPInstanceUID))
    return sent


def send_files(
    node: DimseNode, files: Sequence[Path], what: str, calling_ae: str = "AACLIP", timeout: float = 30.0,
) -> list[str]:
    """C-STORE ``files`` to ``node`` in one association; returns their SOP Instance UIDs.

    No retry here: the listener keeps unsent results and sends them again every
    ``--resend-seconds``. Re-sending an instance already stored is harmless: the SOP Instance UID
    is the same, so the destination holds it once.

    Raises:
        ServerError: the destination cannot be reached or rejects the association.
        SeriesError: it refused an instance (the UID and status are named).
    """
    datasets = [pydicom.dcmread(str(path)) for path in files]
    try:
        assoc = _associate(node, calling_ae, _contexts(datasets), timeout)
    except ServerError as err:
        raise ServerError(f"{what}: {err}") from err
    try:
        return _send_all(assoc, node, datasets, what)
    finally:
        assoc.release()
