"""``pacs listen`` against a real Orthanc: series in by C-STORE, SEG / Parametric Map forwarded to Orthanc.

The listener runs in a forked child (the parent has already imported torch and built nothing that
matters: the child starts in well under a second), so that it can be SIGKILLed mid-run and started
again on the same output folder. After the restart every series is stored exactly once.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pydicom

from aaclip_med.inference import InferenceOptions
from aaclip_med.pacs import DimseNode, SeriesState, ServerError, listen, series_key
from aaclip_med.pacs.listener import _Listener
from tests._tools import stop_when
from tests.pacs.conftest import (
    LISTENER_AE,
    PLANTED,
    THRESHOLD,
    TINY,
    corrupt_copy,
    derived_instances,
    write_ct,
    write_mr,
)
from tests.pacs.orthanc import free_port

QUIET = "1"


def _child(args: list[str], log_path: str) -> None:
    """Run ``aaclip-med ARGS`` with stdout/stderr into ``log_path`` (in a forked child)."""
    import torch

    from aaclip_med.cli import main

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout, sys.stderr = os.fdopen(1, "w", buffering=1), os.fdopen(2, "w", buffering=1)
    for handler in logging.root.handlers[:]:  # pytest's capture handlers, inherited by the fork
        logging.root.removeHandler(handler)
    torch.set_num_threads(1)
    os._exit(main(args))


def _start(args: list[str], log_path: Path, port: int) -> multiprocessing.Process:
    process = multiprocessing.get_context("fork").Process(target=_child, args=(args, str(log_path)), daemon=True)
    process.start()
    end = time.monotonic() + 30
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        assert process.is_alive(), log_path.read_text()
        time.sleep(0.05)
    raise TimeoutError(f"the listener did not open port {port}: {log_path.read_text()}")


def _state(out: Path) -> dict:
    records = {}
    for path in (out / "state").glob("*.json"):
        try:
            records[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError:  # being replaced this instant
            continue
    return records


def _wait_for(out: Path, wanted: dict[str, str], seconds: float = 60.0) -> dict:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        state = _state(out)
        if all(state.get(key, {}).get("status") == status for key, status in wanted.items()):
            return state
        time.sleep(0.05)
    raise TimeoutError(f"state never reached {wanted}: {_state(out)}")


def _send_scu(files: list[Path], port: int) -> None:
    """C-STORE ``files`` to the listener with pynetdicom, as a modality would."""
    from pynetdicom import AE

    datasets = [pydicom.dcmread(p) for p in files]
    ae = AE(ae_title="MODALITY")
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=LISTENER_AE)
    assert assoc.is_established
    try:
        for ds in datasets:
            assert assoc.send_c_store(ds).Status == 0
    finally:
        assoc.release()


def _send_from_orthanc(orthanc, client, files: list[Path]) -> pydicom.Dataset:
    """Upload to Orthanc, then have Orthanc C-STORE the series to the listener (modality "aaclip")."""
    datasets = [pydicom.dcmread(p) for p in files]
    client.store_instances(datasets)
    found = orthanc.post("/tools/lookup", datasets[0].SeriesInstanceUID)
    series_id = next(item["ID"] for item in found if item["Type"] == "Series")
    orthanc.post("/modalities/aaclip/store", {"Resources": [series_id], "Synchronous": True})
    return datasets[0]


def _derived(client, study_uid: str) -> dict[str, list[str]]:
    """SOP Instance UIDs of the SEG and Parametric Map ("PM") objects of a study on Orthanc."""
    return {kind: [item["00080018"]["Value"][0] for item in derived_instances(client, study_uid, kind)]
            for kind in ("SEG", "PM")}


def test_listener_survives_sigkill_without_losing_or_duplicating(orthanc, client, tmp_path):
    out, port = tmp_path / "out", orthanc.listen_port
    args = ["-v", "pacs", "listen", "--ae-title", LISTENER_AE, "--port", str(port), "--host", "127.0.0.1",
            "--forward", f"127.0.0.1:{orthanc.dicom_port}:{orthanc.ae_title}", "--out", str(out),
            "--quiet-seconds", QUIET, "--threshold", str(THRESHOLD), *TINY]
    first_log, second_log = tmp_path / "listen1.log", tmp_path / "listen2.log"
    ct = write_ct(tmp_path / "ct", seed=7, depth=4)
    mr = write_mr(tmp_path / "mr", seed=8, depth=3, study_date="20240301")
    bad = corrupt_copy(write_ct(tmp_path / "ct2", seed=9, depth=3), tmp_path / "bad")
    first = _start(args, first_log, port)
    ct_ds = _send_from_orthanc(orthanc, client, ct)
    _send_scu(mr, port)
    _send_scu(bad, port)
    mr_ds, bad_ds = pydicom.dcmread(mr[0]), pydicom.dcmread(bad[0])
    keys = {name: series_key(ds.SeriesInstanceUID) for name, ds in (("ct", ct_ds), ("mr", mr_ds), ("bad", bad_ds))}

    # kill as soon as the first series has a result: checked while the listener is stopped, so the
    # other series cannot finish between the check and the kill
    assert stop_when(first.pid, lambda: bool(_state(out)), step=0.005), first_log.read_text()
    os.kill(first.pid, signal.SIGKILL)
    first.join(10)
    at_kill = _state(out)
    assert at_kill, first_log.read_text()
    assert any(at_kill.get(k, {}).get("status") not in ("done", "failed") for k in keys.values()), at_kill

    second = _start(args, second_log, port)
    try:
        state = _wait_for(out, {keys["ct"]: "done", keys["mr"]: "done", keys["bad"]: "failed"})
    finally:
        os.kill(second.pid, signal.SIGTERM)
        second.join(20)
    assert second.exitcode == 0, second_log.read_text()

    for name in ("ct", "mr"):
        record = state[keys[name]]
        derived = _derived(client, record["study_uid"])
        # exactly one SEG and one Parametric Map per series, and they are the ones the listener wrote
        assert sorted(derived["SEG"] + derived["PM"]) == sorted(record["output_uids"]) == sorted(record["stored"])
        assert len(derived["SEG"]) == 1 and len(derived["PM"]) == 1
        if at_kill.get(keys[name], {}).get("output_uids"):  # inferred before the kill: not inferred again
            assert at_kill[keys[name]]["output_uids"] == record["output_uids"]
    assert _derived(client, bad_ds.StudyInstanceUID) == {"SEG": [], "PM": []}
    assert f"series {bad_ds.SeriesInstanceUID}: instance" in state[keys["bad"]]["error"]
    logs = first_log.read_text() + second_log.read_text()
    assert "resuming" in second_log.read_text() and bad_ds.SeriesInstanceUID in logs
    assert [v for v in (*PLANTED.values(), "Doe", "Planted") if v in logs] == []
    # received instances are removed once their results are stored; a failed series' are kept
    assert not (out / "incoming" / keys["ct"]).exists() and not (out / "incoming" / keys["mr"]).exists()
    assert len(list((out / "incoming" / keys["bad"]).glob("*.dcm"))) == 3


def test_destination_down_keeps_results_and_sends_them_later(orthanc, client, tiny_model, tmp_path):
    """Forwarding to a node that is down leaves the series inferred; the next start only sends it."""
    out, port = tmp_path / "out", orthanc.listen_port
    files = write_ct(tmp_path / "ct", seed=11, depth=2)
    ds = pydicom.dcmread(files[0])
    key = series_key(ds.SeriesInstanceUID)
    options = InferenceOptions(threshold=THRESHOLD, device="cpu")

    def run(forward: DimseNode, until) -> None:
        stop, ready = threading.Event(), threading.Event()
        thread = threading.Thread(target=listen, args=(tiny_model, out), daemon=True, kwargs=dict(
            ae_title=LISTENER_AE, port=port, host="127.0.0.1", forward=forward, options=options, quiet_seconds=0.3,
            resend_seconds=0.3, poll_seconds=0.05, timeout=3, stop=stop, on_ready=ready.set))
        thread.start()
        try:
            assert ready.wait(30), "the listener did not start"
            until()
        finally:
            stop.set()
            thread.join(30)

    def send_and_wait_inferred():
        _send_scu(files, port)
        _wait_for(out, {key: "inferred"}, 30)
        time.sleep(1.0)  # a few resend attempts against the dead node

    run(DimseNode("127.0.0.1", free_port(), "NOBODY"), send_and_wait_inferred)
    inferred = _state(out)[key]
    assert inferred["status"] == "inferred" and "stored" not in inferred
    run(DimseNode("127.0.0.1", orthanc.dicom_port, orthanc.ae_title), lambda: _wait_for(out, {key: "done"}, 30))
    done = _state(out)[key]
    assert done["output_uids"] == inferred["output_uids"]  # sent, not inferred again
    assert sorted(sum(_derived(client, ds.StudyInstanceUID).values(), [])) == sorted(done["output_uids"])



class _FakeProcessor:
    """Stands in for SeriesProcessor in the listen loop: ``action(key)`` is what processing does."""

    def __init__(self, out_dir: Path, action) -> None:
        self.out_dir, self.state, self.action = out_dir, SeriesState(out_dir), action

    def process(self, key: str) -> str:
        return self.action(key)

    def remove_incoming(self, key: str) -> None:
        pass


def test_instances_arriving_during_processing_are_reported(tmp_path, caplog):
    def action(key):  # an instance of the series arrives while it is inferred
        loop.receiver.track(key)
        fake.state.update(key, status="done", series_uid="1.2.3")
        return "done"

    fake = _FakeProcessor(tmp_path, action)
    loop = _Listener(fake, keep_sources=False)
    loop.receiver.track("s1", age=10)
    with caplog.at_level(logging.WARNING, logger="aaclip_med"):
        loop.step(quiet_seconds=1, resend_seconds=5)
    assert "series 1.2.3: instances arrived while it was processed" in caplog.text
    assert loop.counts["done"] == 1 and loop.receiver.pending() == 0


def test_destination_error_postpones_the_series(tmp_path):
    def action(key):
        raise ServerError("results of series 1.2.3: NOBODY@127.0.0.1:9 is unreachable")

    loop = _Listener(_FakeProcessor(tmp_path, action), keep_sources=False)
    loop.receiver.track("s1", age=10)
    loop.step(quiet_seconds=1, resend_seconds=60)
    assert loop.receiver.pending() == 1 and loop.receiver.quiet(1) == []  # tried again in a minute, not now
    assert loop.counts == {"done": 0, "failed": 0, "ignored": 0}


def test_stop_summary_counts_series_waiting_to_be_forwarded(tmp_path):
    def action(key):  # inferred, then the destination is down: the results wait for the next attempt
        fake.state.update(key, status="inferred", series_uid="1.2.3")
        raise ServerError("results of series 1.2.3: NOBODY@127.0.0.1:9 is unreachable")

    fake = _FakeProcessor(tmp_path, action)
    loop = _Listener(fake, keep_sources=False)
    loop.receiver.track("s1", age=10)
    loop.receiver.track("s2", age=0)  # still arriving
    loop.step(quiet_seconds=5, resend_seconds=60)
    assert loop.summary() == {"done": 0, "failed": 0, "ignored": 0, "waiting_to_forward": 1, "not_processed": 1}
