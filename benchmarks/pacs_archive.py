"""Archive runs against a real Orthanc: series per hour on 1 and 2 processes, peak RSS per rank against list length.

Uploads synthetic CT series (``--slices`` x ``--side`` x ``--side``) to a private Orthanc (Debian
packages orthanc + orthanc-dicomweb, started on free ports), then runs ``aaclip-med pacs run
--query`` under ``torchrun --nproc_per_node P`` (gloo on CPU) into a new folder each time:

- ``rate``: series per hour over the run's processing time (from the first rank's start to the
  last rank's end, as ``pacs_run.json`` records it; model loading is left out), for P = 1 and 2,
  with the tiny test network on ``--series`` series and ViT-B-16 (random weights) on
  ``--vit-series`` series;
- ``memory``: each rank's peak RSS (its status file records it) for ``--series`` and
  ``--long-series`` series on 2 processes: a rank holds two series at most, so the peak should not
  grow with the list.

Every run has series of its own (a study date of its own): a Parametric Map stored back has its
source's Modality and study, so a second query over the same series would find the first run's maps
too. Each process runs ``--threads`` threads (default 1: on a shared machine, threads that wait for
each other cost more than they give). Prints one JSON line per run, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import torch
from _common import REPO, emit, host_info, print_table

from tests._synthetic import write_dicom_series

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


def _upload(orthanc, root: Path, count: int, slices: int, side: int, study_date: str) -> None:
    """``count`` CT series in studies of 10, with ``study_date``, stored on Orthanc (files removed after)."""
    import requests
    from dicomweb_client import DICOMwebClient

    session = requests.Session()
    session.auth = (orthanc.user, orthanc.password)
    client = DICOMwebClient(orthanc.dicomweb_url, session=session)
    rng = np.random.default_rng(0)
    study = None
    for n in range(count):
        if n % 10 == 0:
            study = pydicom.uid.generate_uid()
        volume = rng.integers(-300, 300, (slices, side, side)).astype(np.int16)
        folder = root / f"src{n}"
        datasets = []
        for item in write_dicom_series(folder, volume, shuffle_seed=n):
            ds = pydicom.dcmread(item["path"])
            ds.StudyInstanceUID, ds.StudyDate = study, study_date
            datasets.append(ds)
        client.store_instances(datasets)
        shutil.rmtree(folder)


def _run(orthanc, out: Path, processes: int, study_date: str, backbone: list[str], threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"OMP_NUM_THREADS": str(threads), "AACLIP_PACS_USER": orthanc.user,
            "AACLIP_PACS_PASSWORD": orthanc.password, "PYTHONPATH": str(REPO)}
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", str(processes), "-m", "aaclip_med.cli", "pacs", "run",
           "--url", orthanc.dicomweb_url, "--query", f"Modality=CT&StudyDate={study_date}", "--out", str(out),
           "--threshold", "0.5", "--device", "cpu", "--seed", "0", "--backbone-weights", "random", *backbone]
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"pacs run failed ({result.returncode}): {result.stderr[-2000:]}")
    record = json.loads((out / "pacs_run.json").read_text())
    ranks = [json.loads(p.read_text()) for p in sorted((out / "status").glob("rank-*.json"))]
    return {"processes": processes, "series": record["worklist"], "done": record["counts"]["done"],
            "series_per_hour": record["throughput"]["series_per_hour"], "processing_s": record["throughput"]["wall_s"],
            "command_s": round(wall, 1), "peak_rss_mb_per_rank": [r["peak_rss_mb"] for r in ranks],
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=60, help="series of the tiny-network runs")
    parser.add_argument("--long-series", type=int, default=240, help="series of the long list (memory)")
    parser.add_argument("--vit-series", type=int, default=6, help="series of the ViT-B-16 runs (0: skip)")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="threads per process (OMP_NUM_THREADS)")
    args = parser.parse_args()
    if TORCHRUN is None:
        raise SystemExit("no torchrun next to this Python")
    sys.path.insert(0, str(REPO))
    from tests.pacs.orthanc import Orthanc

    emit({"host": host_info(torch.device("cpu")), "slices": args.slices, "side": args.side, "threads": args.threads})
    tiny = ["--backbone", "aaclip-tiny"]
    vit = ["--backbone", "ViT-B-16", "--image-size", "224"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        orthanc = Orthanc(root / "orthanc").start()
        try:
            # (network, series, processes); each run its own series, under a study date of its own
            plan = [("tiny", args.series, 1, tiny), ("tiny", args.series, 2, tiny), ("tiny", args.long_series, 2, tiny)]
            if args.vit_series:
                plan += [("ViT-B-16", args.vit_series, 1, vit), ("ViT-B-16", args.vit_series, 2, vit)]
            dates = [f"202403{n + 1:02d}" for n in range(len(plan))]
            for date, (_, count, _, _) in zip(dates, plan, strict=True):
                _upload(orthanc, root, count, args.slices, args.side, date)
            for n, (network, _, processes, backbone) in enumerate(plan):
                row = {"network": network, **_run(orthanc, root / f"out{n}", processes, dates[n], backbone, args.threads)}
                row["peak_rss_mb_max"] = max(row["peak_rss_mb_per_rank"])
                emit(row)
                rows.append(row)
        finally:
            orthanc.stop()
    for network in ("tiny", "ViT-B-16"):
        one = next((r for r in rows if r["network"] == network and r["processes"] == 1), None)
        two = next((r for r in rows if r["network"] == network and r["processes"] == 2
                    and r["series"] == (one or {}).get("series")), None)
        if one and two:
            emit({"network": network, "two_over_one_series_per_hour": round(two["series_per_hour"] / one["series_per_hour"], 2)})
    short = next(r for r in rows if r["network"] == "tiny" and r["processes"] == 2 and r["series"] == args.series)
    long = next(r for r in rows if r["network"] == "tiny" and r["series"] == args.long_series)
    emit({"peak_rss_long_over_short": round(long["peak_rss_mb_max"] / short["peak_rss_mb_max"], 3)})
    print_table(rows, ["network", "processes", "series", "done", "series_per_hour", "processing_s", "command_s",
                       "peak_rss_mb_max", "load_avg_1m"])


if __name__ == "__main__":
    main()
