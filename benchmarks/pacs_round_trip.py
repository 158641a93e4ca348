"""Time per series of a PACS round trip against a real Orthanc, next to inference alone on the same files.

For each of ``--series`` synthetic CT series (``--slices`` x ``--side`` x ``--side``), uploaded to a
private Orthanc (Debian packages orthanc + orthanc-dicomweb, started here on free ports):

- ``local``: ``run_inference`` with DICOM outputs on the series' own files (no network);
- ``dicomweb``: ``run_pacs`` by series UID (QIDO search, WADO-RS retrieve, checks, the same
  inference, STOW-RS of SEG + Parametric Map), with the phases timed separately on a second pass;
- ``dimse``: the series C-STOREd to an in-process ``listen``; from the first instance sent until its
  SEG / Parametric Map are stored on Orthanc, minus the configured quiet period.

Prints one JSON line per measurement, then a table of medians with the round trip / local ratio and
``io_share``, the part of the timed DICOMweb phases spent retrieving and storing.
The model is built once (default the tiny test backbone with random weights: the figures are the
plumbing around inference, which a real backbone dwarfs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
import torch
from _common import emit, host_info, print_table

from aaclip_med.inference import InferenceOptions
from aaclip_med.model import AAClipConfig, build_aaclip
from aaclip_med.pacs import (
    Credentials,
    DicomWebServer,
    DimseNode,
    dicomweb,
    listen,
    run_pacs,
    series_key,
)
from aaclip_med.pacs.processing import infer_series
from tests._synthetic import write_dicom_series

REPO = Path(__file__).resolve().parents[1]


def _orthanc_class():
    """The tests' Orthanc launcher (tests/pacs/orthanc.py: temp config, free ports, stop by PID)."""
    sys.path.insert(0, str(REPO))
    from tests.pacs.orthanc import Orthanc, free_port

    return Orthanc, free_port

def _series(root: Path, count: int, slices: int, side: int) -> list[list[Path]]:
    rng = np.random.default_rng(0)
    out = []
    for n in range(count):
        volume = rng.integers(-300, 300, (slices, side, side)).astype(np.int16)
        out.append([item["path"] for item in write_dicom_series(root / f"src{n}", volume, shuffle_seed=n)])
    return out


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _phases(server, client, ref, model, options, work: Path) -> dict[str, float]:
    """Retrieve, infer and store of one series, each timed (a second copy of what run_pacs does)."""
    folder = work / "in" / series_key(ref.series_uid)
    out = work / "out"
    times = {"retrieve_s": _timed(lambda: dicomweb.retrieve_series(server, client, ref, folder))}
    times["infer_s"] = _timed(lambda: infer_series(model, options, "ct", folder, out))
    key = series_key(ref.series_uid)
    files = [out / f"{key}_pmap.dcm", out / f"{key}_seg.dcm"]
    times["store_s"] = _timed(lambda: dicomweb.store_files(server, client, files, "benchmark"))
    return times


def _dimse(orthanc, model, options, files: list[Path], out: Path, listen_port: int, quiet: float) -> float:
    """Seconds from the first C-STORE to the results stored on Orthanc, minus the quiet period."""
    from pynetdicom import AE

    stop, ready = threading.Event(), threading.Event()
    forward = DimseNode("127.0.0.1", orthanc.dicom_port, orthanc.ae_title)
    thread = threading.Thread(target=listen, args=(model, out), daemon=True, kwargs=dict(
        ae_title="BENCH", port=listen_port, host="127.0.0.1", forward=forward, options=options,
        quiet_seconds=quiet, poll_seconds=0.02, stop=stop, on_ready=ready.set))
    thread.start()
    ready.wait(30)
    datasets = [pydicom.dcmread(p) for p in files]
    key = series_key(str(datasets[0].SeriesInstanceUID))
    start = time.perf_counter()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", listen_port, ae_title="BENCH")
    for ds in datasets:
        assoc.send_c_store(ds)
    assoc.release()
    state = out / "state" / f"{key}.json"
    while '"done"' not in (state.read_text() if state.is_file() else ""):
        time.sleep(0.01)
    elapsed = time.perf_counter() - start - quiet
    stop.set()
    thread.join(30)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=3)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--backbone", default="aaclip-tiny")
    parser.add_argument("--quiet", type=float, default=0.5, help="listener quiet period (s), subtracted")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_aaclip(AAClipConfig(backbone=args.backbone, pretrained="random")).eval()
    options = InferenceOptions(modality="ct", threshold=0.5, device="cpu")
    emit({"host": host_info(torch.device("cpu")), "series": args.series, "slices": args.slices, "side": args.side,
          "backbone": args.backbone})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        orthanc_class, free_port = _orthanc_class()
        listen_port = free_port()
        orthanc = orthanc_class(root / "orthanc").start()
        try:
            server = DicomWebServer(orthanc.dicomweb_url, Credentials(orthanc.user, orthanc.password))
            client = dicomweb.connect(server)
            series = _series(root, args.series + 1, args.slices, args.side)
            infer_series(model, options, "ct", series[0][0].parent, root / "warmup")  # one-time costs out of the figures
            for n, files in enumerate(series[1:]):
                datasets = [pydicom.dcmread(p) for p in files]
                client.store_instances(datasets)
                uid = str(datasets[0].SeriesInstanceUID)
                ref = dicomweb.find_series(server, client, series_uid=uid)[0]
                row = {"series": n, "instances": len(files)}
                row["local_s"] = _timed(lambda f=files, n=n: infer_series(model, options, "ct", f[0].parent, root / f"local{n}"))
                row["dicomweb_s"] = _timed(lambda u=uid, n=n: run_pacs(server, model, root / f"run{n}", series=[u], options=options))
                row |= _phases(server, client, ref, model, options, root / f"phases{n}")
                row["dimse_s"] = _dimse(orthanc, model, options, files, root / f"listen{n}", listen_port, args.quiet)
                row["io_share"] = (row["retrieve_s"] + row["store_s"]) / (row["retrieve_s"] + row["infer_s"] + row["store_s"])
                row["load_avg_1m"] = round(os.getloadavg()[0], 2)
                row["dicomweb_over_local"] = row["dicomweb_s"] / row["local_s"]
                row["dimse_over_local"] = row["dimse_s"] / row["local_s"]
                emit(row)
                rows.append(row)
        finally:
            orthanc.stop()
    columns = ["local_s", "dicomweb_s", "retrieve_s", "infer_s", "store_s", "io_share", "dimse_s", "dicomweb_over_local",
               "dimse_over_local", "load_avg_1m"]
    median = {"series": "median", **{c: statistics.median(r[c] for r in rows) for c in columns}}
    print_table([*rows, median], ["series", *columns])


if __name__ == "__main__":
    main()
