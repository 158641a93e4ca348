"""Time and peak memory of ``evaluate`` (metrics, report and viewer) on a CT test set.

Usage::

    python benchmarks/report_time.py                            # 20 series of 256 x 256 x 64
    python benchmarks/report_time.py --series 4 --slices 16     # quick
    python benchmarks/report_time.py --cache-mb 64 512 1024     # one measurement per budget

The test set (written once into ``--data``, reused by later runs): ``--series`` synthetic CT
series written with the package's DICOM series writer (:func:`aaclip_med.demo.writers.write_ct_series`,
one file per slice), half of them with a spherical lesion in a NIfTI mask, a manifest with one
line per slice, and a predictions directory as ``aaclip-med infer --manifest`` writes it, with
synthetic maps (noise plus a bump on the lesion): no model runs, so only evaluation is measured.

Each measurement runs ``evaluate_predictions`` in a fresh process and prints: the whole
evaluation's seconds, the metric pass's seconds (``metrics_seconds`` of report.json), the report
and viewer's seconds (the rest), each also as a multiple of the same run's matmul probe (seconds of
one fp32 1024^3 product ``a @ b.T``, best of several), peak resident memory, how many volumes
were decoded (sources and masks; calls of the data layer's loader), and the viewer's size on disk.
Code without a volume budget (before issue 23) is measured with its own caches.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import PeakMemory, emit, host_info, matmul_peak, print_table

from aaclip_med.units import in_mb

_PROBE_SIZE = 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of the test set, built when missing (default: one per size in the temp folder)")
    parser.add_argument("--out", type=Path, default=None, help="report folder, replaced (default: beside --data)")
    parser.add_argument("--cache-mb", type=int, nargs="+", default=[None],
                        help="volume budgets to measure (default: evaluate's default)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--jsonl", type=Path, default=None)
    return parser.parse_args(argv)


def _geometry(side: int) -> dict:
    return {"origin": np.array([-128.0, -128.0, 0.0]), "row_dir": np.array([1.0, 0.0, 0.0]),
            "col_dir": np.array([0.0, 1.0, 0.0]), "spacing": (0.8, 0.8), "step": 2.0}


def _phantom(rng: np.random.Generator, side: int, slices: int) -> np.ndarray:
    """(slices, rows, columns) int16 HU: a water ellipse with noise in air."""
    y, x = np.mgrid[:side, :side] / side - 0.5
    body = (x / 0.4) ** 2 + (y / 0.3) ** 2 < 1
    hu = np.where(body, 40, -1000)[None] + rng.normal(0, 20, (slices, side, side))
    return hu.astype(np.int16)


def _lesion(rng: np.random.Generator, side: int, slices: int) -> np.ndarray:
    """(rows, columns, slices) bool sphere of radius side/10, inside the body."""
    centre = np.array([side / 2 + rng.integers(-20, 20), side / 2 + rng.integers(-20, 20), slices / 2])
    r, c, s = np.ogrid[:side, :side, :slices]
    return ((r - centre[0]) ** 2 + (c - centre[1]) ** 2 + ((s - centre[2]) * 4) ** 2) < (side / 10) ** 2


def build_test_set(root: Path, series: int, side: int, slices: int) -> Path:
    """Write the series, masks, manifest and predictions; returns the manifest path."""
    from aaclip_med.demo.writers import series_affine_ras, write_ct_series, write_nifti_gz

    rng = np.random.default_rng(0)
    geometry = _geometry(side)
    affine = series_affine_ras(geometry["origin"], geometry["row_dir"], geometry["col_dir"], geometry["spacing"], geometry["step"])
    (root / "predictions" / "maps").mkdir(parents=True, exist_ok=True)
    manifest, predictions = [], []
    for n in range(series):
        image_path, mask_path = f"ct/series_{n:02d}", f"ct/series_{n:02d}_mask.nii.gz"
        write_ct_series(root / image_path, _phantom(rng, side, slices), geometry, seed=n)
        lesion = _lesion(rng, side, slices) if n % 2 else np.zeros((side, side, slices), bool)
        write_nifti_gz(root / mask_path, lesion.astype(np.uint8), affine)
        for k in range(slices):
            index = len(manifest)
            score_map = (rng.random((side, side)) * 0.3 + 0.7 * lesion[..., k]).astype(np.float32)
            np.save(root / "predictions" / "maps" / f"{index:06d}.npy", score_map)
            manifest.append({"class_name": "ct", "image_path": image_path, "slice_index": k, "mask_path": mask_path,
                             "label": float(lesion[..., k].any()), "modality": "ct", "domain": "medical"})
            predictions.append({"index": index, "image_path": image_path, "map_path": f"maps/{index:06d}.npy",
                                "image_score": float(score_map.max()), "global_score": 0.5,
                                "map_max": float(score_map.max()), "domain": "medical"})
    for name, rows in (("manifest.jsonl", manifest), ("predictions/predictions.jsonl", predictions)):
        (root / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    (root / "predictions" / "run.json").write_text(json.dumps({"domain": "medical", "modality": "ct"}))
    return root / "manifest.jsonl"


def _probe_seconds() -> float:
    peak = matmul_peak(torch.float32, torch.device("cpu"), _PROBE_SIZE, seconds=1.0)
    return 2.0 * _PROBE_SIZE**3 / (peak["peak_gflops"] * 1e9)


def _count_decodes() -> dict[str, int]:
    """Count every decode of the data layer (sources and masks alike) by wrapping its loader factory."""
    from aaclip_med.data import loading

    counts: dict[str, int] = {}
    factory = loading._loader

    def counted(kind, *args, **kwargs):
        load = factory(kind, *args, **kwargs)

        def call(path):
            counts[kind] = counts.get(kind, 0) + 1
            return load(path)

        return call

    loading._loader = counted
    return counts


def measure(args: argparse.Namespace, cache_mb: int | None) -> dict:
    from aaclip_med.evaluation.evaluate import evaluate_predictions

    probe_before = _probe_seconds()
    counts = _count_decodes()
    extra = {}
    accepts_budget = "cache_mb" in inspect.signature(evaluate_predictions).parameters
    if cache_mb is not None and accepts_budget:
        extra["cache_mb"] = cache_mb
    shutil.rmtree(args.out, ignore_errors=True)
    with PeakMemory(torch.device("cpu")) as memory:
        start = time.perf_counter()
        report = evaluate_predictions(args.data / "manifest.jsonl", args.data, args.data / "predictions", args.out, **extra)
        total = time.perf_counter() - start
    probe = min(probe_before, _probe_seconds())
    viewer = sum(f.stat().st_size for f in (args.out / "viewer").rglob("*") if f.is_file()) if (args.out / "viewer").is_dir() else 0
    report_s = total - report["metrics_seconds"]
    return {
        "kind": "evaluate", "series": args.series, "shape": [args.side, args.side, args.slices],
        "cache_mb": cache_mb if accepts_budget else "n/a (own caches)",
        "total_s": round(total, 2), "metrics_s": report["metrics_seconds"], "report_viewer_s": round(report_s, 2),
        "probe_s": round(probe, 5), "total_in_probes": round(total / probe), "report_viewer_in_probes": round(report_s / probe),
        "peak_rss_mb": round(memory.peak_mb), "rss_added_mb": round(memory.delta_mb),
        "decodes": sum(counts.values()), "decodes_by_kind": counts, "viewer_mb": round(in_mb(viewer), 1),
        "pixel_auroc": report["mean"]["pixel_auroc"],
    }


def _folders(args: argparse.Namespace) -> None:
    name = f"aaclip_report_time_{args.series}x{args.side}x{args.side}x{args.slices}"
    args.data = args.data or Path(tempfile.gettempdir()) / name
    args.out = args.out or Path(tempfile.gettempdir()) / f"{name}_report"
    manifest = args.data / "manifest.jsonl"
    if manifest.is_file() and len(manifest.read_text().splitlines()) != args.series * args.slices:
        msg = f"{args.data} holds a test set of another size than --series {args.series} --slices {args.slices}"
        raise SystemExit(msg)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _folders(args)
    if args.measure:
        emit(measure(args, args.cache_mb[0]))
        return
    emit({"kind": "host", **host_info(torch.device("cpu"))}, args.jsonl)
    if not (args.data / "manifest.jsonl").is_file():
        start = time.perf_counter()
        build_test_set(args.data, args.series, args.side, args.slices)
        emit({"kind": "test_set", "folder": str(args.data), "seconds": round(time.perf_counter() - start, 1)}, args.jsonl)
    rows = []
    for budget in args.cache_mb:
        command = [sys.executable, __file__, "--measure", "--data", str(args.data), "--out", str(args.out),
                   "--series", str(args.series), "--side", str(args.side), "--slices", str(args.slices)]
        command += [] if budget is None else ["--cache-mb", str(budget)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        record = json.loads(output.strip().splitlines()[-1])
        emit(record, args.jsonl)
        rows.append(record)
    print_table(rows, ["cache_mb", "total_s", "metrics_s", "report_viewer_s", "report_viewer_in_probes",
                       "peak_rss_mb", "decodes", "viewer_mb", "pixel_auroc"])


if __name__ == "__main__":
    main()
