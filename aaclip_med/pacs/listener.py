"""``pacs listen``: a C-STORE receiver that infers each series once complete and forwards its results.

A series counts as complete when no instance of it arrived for ``quiet_seconds`` (DICOM has no
"end of series" message; senders finish series at their own pace). Then it is checked, inferred and
its Parametric Map (and SEG, with a threshold) is sent by C-STORE to ``forward``.

Restart-safe, including after SIGKILL: instances are files under ``OUT/incoming`` (written
atomically as they arrive) and each step is recorded in ``OUT/state/<key>.json``. On start, series
received but not processed are processed, series inferred but not sent are only sent, and stored
ones are left alone. A series that failed is retried only when new instances of it arrive (a
sender re-sending it). When the destination is down, sending is retried every ``resend_seconds``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from aaclip_med.files import remove_stale_temporaries
from aaclip_med.inference.options import InferenceOptions
from aaclip_med.pacs.dimse import SeriesReceiver, import_pynetdicom, send_files
from aaclip_med.pacs.errors import PacsError
from aaclip_med.pacs.processing import SeriesProcessor
from aaclip_med.pacs.settings import DimseNode
from aaclip_med.pacs.state import FINISHED, INCOMING_DIR

__all__ = ["listen"]

logger = logging.getLogger(__name__)


def _start_server(ae_title: str, host: str, port: int, receiver: SeriesReceiver, accept_from: Sequence[str], timeout: float):
    pynetdicom = import_pynetdicom()
    from pynetdicom.presentation import AllStoragePresentationContexts
    from pynetdicom.sop_class import Verification

    ae = pynetdicom.AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, pynetdicom.ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    if accept_from:
        ae.require_calling_aet = list(accept_from)
    try:
        return ae.start_server((host, port), block=False, evt_handlers=[(pynetdicom.evt.EVT_C_STORE, receiver.handle_store)])
    except OSError as err:
        raise OSError(f"cannot listen on {host}:{port} ({err.strerror or err}); is the port in use?") from err


class _Listener:
    """The listen loop's parts: the processor, the receiver and the late-instance warnings."""

    def __init__(self, processor: SeriesProcessor, keep_sources: bool) -> None:
        self.processor, self.keep_sources = processor, keep_sources
        self.counts = {"done": 0, "failed": 0, "ignored": 0}
        self._warned: set[str] = set()
        self.receiver = SeriesReceiver(processor.out_dir / INCOMING_DIR, self._finished, self._late)

    def _finished(self, key: str) -> bool:
        return self.processor.state.status(key) in FINISHED

    def _late(self, key: str, series_uid: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("series %s: instances arrived after it was processed; not processed again "
                           "(delete %s to redo it)", series_uid, self.processor.state.file(key))

    def resume(self) -> None:
        """Track what a previous run left: received series, and inferred ones still to send."""
        self.receiver.scan()
        for key, record in self.processor.state.records().items():
            if record.get("status") == "inferred":
                self.receiver.track(key, age=float("inf"))
            elif record.get("status") in (*FINISHED, "failed"):
                self.receiver.forget(key)  # not redone; a failed one is retried when it is re-sent
        if self.receiver.pending():
            logger.info("resuming: %d series received or inferred before the restart", self.receiver.pending())

    def summary(self) -> dict:
        """The counts of this run, and what is left for the next start: series inferred whose results
        wait to be forwarded (the destination was down), and series received but not processed."""
        pending = self.receiver.pending_keys()
        waiting = sum(1 for key in pending if self.processor.state.status(key) == "inferred")
        return {**self.counts, "waiting_to_forward": waiting, "not_processed": len(pending) - waiting}

    def step(self, quiet_seconds: float, resend_seconds: float) -> None:
        """Process every series quiet for ``quiet_seconds``."""
        for key in self.receiver.quiet(quiet_seconds):
            if self._finished(key):  # late instances of a processed series
                if not self.keep_sources:
                    self.processor.remove_incoming(key)
                self.receiver.forget(key)
                continue
            started = self.receiver.last(key)
            try:
                status = self.processor.process(key)
            except PacsError as err:  # destination down or refusing: keep the outputs, retry later
                logger.error("%s; next attempt in %g s", err, resend_seconds)
                self.receiver.track(key, age=quiet_seconds - resend_seconds)
                continue
            except Exception as err:  # noqa: BLE001 - the listener must survive any one series
                logger.exception("series key %s: unexpected %s; skipped", key, type(err).__name__)
                status = "failed"
            self.counts[status] = self.counts.get(status, 0) + 1
            if self.receiver.last(key) != started:
                record = self.processor.state.get(key) or {}
                logger.warning("series %s: instances arrived while it was processed and are not in its results; "
                               "raise --quiet-seconds if senders pause inside a series", record.get("series_uid", key))
            self.receiver.forget(key)


def listen(
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    ae_title: str,
    port: int,
    forward: DimseNode,
    options: InferenceOptions | None = None,
    host: str = "0.0.0.0",
    quiet_seconds: float = 30.0,
    resend_seconds: float = 60.0,
    poll_seconds: float = 0.5,
    accept_from: Sequence[str] = (),
    keep_sources: bool = False,
    timeout: float = 30.0,
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> dict:
    """Receive series by C-STORE, infer each once complete, C-STORE its SEG / Parametric Map to ``forward``.

    Runs until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT).

    Args:
        model: the network, used for every series.
        out_dir: the only folder written to (layout in ``processing.py``).
        ae_title: our AE title (the called AE title senders use; also the calling one when forwarding).
        port: TCP port to listen on.
        forward: destination of the results (``DimseNode.parse("host:4242:ORTHANC")``).
        options: inference settings (default :class:`~aaclip_med.inference.InferenceOptions`;
            ``threshold`` is needed for a SEG), checked before any series is touched.
        host: address to listen on.
        quiet_seconds: a series is complete once nothing of it arrived for this long.
        resend_seconds: wait before sending again to a destination that was down.
        poll_seconds: how often complete series are looked for.
        accept_from: calling AE titles accepted (default: any).
        keep_sources: keep received instances after their results are stored.
        timeout: network timeout (s) of associations, both ways.
        stop: set it to stop listening (after the series being processed).
        on_ready: called once the server accepts associations.

    Returns:
        Counts of the series processed during this call {"done", "failed", "ignored"}, and of those
        left for the next start {"waiting_to_forward" (inferred, destination down), "not_processed"}.
    """
    processor = SeriesProcessor(model, options, out_dir, _forwarder(forward, ae_title, timeout), keep_sources)
    incoming = processor.out_dir / INCOMING_DIR
    incoming.mkdir(parents=True, exist_ok=True)
    if remove_stale_temporaries(incoming):
        logger.info("removed partial instance files of an interrupted run")
    state = _Listener(processor, keep_sources)
    state.resume()
    server = _start_server(ae_title, host, port, state.receiver, accept_from, timeout)
    logger.info("listening as %s on %s:%d; results go to %s; a series is complete after %g s without news",
                ae_title, host, port, forward, quiet_seconds)
    stop = stop or threading.Event()
    try:
        if on_ready:
            on_ready()
        while not stop.is_set():
            state.step(quiet_seconds, resend_seconds)
            stop.wait(poll_seconds)
    finally:
        server.shutdown()
    summary = state.summary()
    logger.info("stopped: %s%s", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()),
                "; those left are taken up at the next start" if summary["waiting_to_forward"] + summary["not_processed"]
                else "")
    return summary


def _forwarder(forward: DimseNode, ae_title: str, timeout: float):
    def store(files: Sequence[Path], what: str) -> list[str]:
        # no retries here: the listen loop tries again every resend_seconds
        return send_files(forward, files, what, calling_ae=ae_title, timeout=timeout)

    return store

