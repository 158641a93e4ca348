"""Throughput of loading and preprocessing (slices per second) for DICOM series and NIfTI volumes.

Usage::

    python benchmarks/data_loading.py                      # reduced: 4 cases of 256 x 256 x 16
    python benchmarks/data_loading.py --side 512 --slices 64 --cases 4 --workers 0 2 4

Synthetic cases are written to a temporary folder with tests/_synthetic.py (a CT
series, one DICOM file per slice, shuffled; a NIfTI volume with an oblique affine). Measured:

- ``load``: :func:`aaclip_med.data.load_image` alone (decode + geometry), in the main process;
- ``load+preprocess`` (workers 0 at torch's default threads and at 1 thread, then N workers): load, :class:`~aaclip_med.data.SliceVolumed`, then
  :func:`~aaclip_med.data.inference_transforms` (modality preset, 3 channels, bicubic resize to
  S x S, CLIP normalisation) on every slice, through a ``torch.utils.data.DataLoader`` with
  0 (main process) or N worker processes, one case per item;
- ``cohort``: one epoch of a training-style manifest (one record per slice, as ``cohort`` builds)
  through :class:`~aaclip_med.data.ManifestDataset` (loading + slicing, no model preprocessing),
  without the decoded-volume cache (every record decodes its whole case) and with it, in
  manifest order and in a shuffled order, with a budget holding every case and one holding a
  single case, and in training's case-local order (``aaclip_med.training.batches``: cases
  shuffled, slices shuffled within windows of 2 cases) with a budget of 2 cases. ``reads`` counts volume decodes over all loading processes (per worker, from each
  worker's own cache).

Prints one JSON line per measurement, then a table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import emit, host_info, print_table
from torch.utils.data import DataLoader, Dataset

from aaclip_med.data import ManifestDataset, SliceVolumed, inference_transforms, load_image
from aaclip_med.keys import Keys
from aaclip_med.training.batches import case_keys, case_local_order
from tests._synthetic import write_dicom_series, write_nifti


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=256, help="in-plane size of the synthetic slices")
    parser.add_argument("--slices", type=int, default=16, help="slices per case")
    parser.add_argument("--cases", type=int, default=4, help="cases per format")
    parser.add_argument("--image-size", type=int, default=518, help="model input side S")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument(
        "--main-threads",
        type=int,
        nargs="+",
        default=[0, 1],
        help="torch threads for the workers=0 runs (0: torch's default); workers always use 1",
    )
    parser.add_argument("--formats", nargs="+", default=["dicom", "nifti"], choices=["dicom", "nifti"])
    parser.add_argument("--cohort", action=argparse.BooleanOptionalAction, default=True,
                        help="measure one epoch of slice records with and without the volume cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jsonl", type=Path, default=None)
    return parser.parse_args(argv)


def synthetic_volume(side: int, slices: int, seed: int) -> np.ndarray:
    """(D, H, W) int16 HU: air around a soft-tissue ellipse with brighter blobs and noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(np.linspace(-1, 1, slices), np.linspace(-1, 1, side), np.linspace(-1, 1, side), indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.6) ** 2 < 1.0
    volume = np.where(body, 40.0, -1000.0) + rng.normal(0, 15, body.shape)
    volume += 200.0 * np.exp(-((x - 0.2) ** 2 + (y + 0.1) ** 2 + z**2) / 0.02)
    return volume.astype(np.int16)


def write_cases(root: Path, fmt: str, args: argparse.Namespace) -> list[Path]:
    """``args.cases`` synthetic cases of ``fmt``; returns the path to load for each."""
    paths = []
    for case in range(args.cases):
        volume = synthetic_volume(args.side, args.slices, args.seed + case)  # (D, H, W)
        if fmt == "dicom":
            folder = root / f"dicom_{case}"
            write_dicom_series(folder, volume, shuffle_seed=case)
            paths.append(folder)
        else:
            paths.append(write_nifti(root / f"case_{case}.nii.gz", np.transpose(volume, (2, 1, 0))))  # (X, Y, Z)
    return paths


class CaseSlices(Dataset):
    """One item per case: load, cut into slices, preprocess each; returns (N, 3, S, S) float32."""

    def __init__(self, paths: list[Path], image_size: int) -> None:
        self.paths = paths
        self.slicer = SliceVolumed(Keys.IMAGE)
        self.preprocess = inference_transforms("ct", image_size=image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        volume = load_image(self.paths[index])
        slices = self.slicer({Keys.IMAGE: volume})
        return torch.stack([torch.as_tensor(self.preprocess(s)[Keys.IMAGE]) for s in slices])


def measure_load(fmt: str, paths: list[Path], slices: int) -> dict:
    load_image(paths[0])  # first call pays imports and reader set-up
    start = time.perf_counter()
    for path in paths:
        load_image(path)
    elapsed = time.perf_counter() - start
    total = slices * len(paths)
    return {"kind": "data", "format": fmt, "stage": "load", "workers": 0, "slices": total,
            "seconds": elapsed, "slices_per_s": total / elapsed}


def warm_up(dataset: CaseSlices) -> None:
    """Preprocess one slice untimed: first calls pay lazy imports and kernel set-up (workers fork warm)."""
    volume = load_image(dataset.paths[0])
    first = dataset.slicer({Keys.IMAGE: volume})[0]
    dataset.preprocess(first)


def measure_pipeline(fmt: str, paths: list[Path], args: argparse.Namespace, workers: int) -> dict:
    dataset = CaseSlices(paths, args.image_size)
    warm_up(dataset)
    threads = torch.get_num_threads() if workers == 0 else 1  # DataLoader workers run 1 thread each
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, persistent_workers=False)
    start = time.perf_counter()
    total, shape = 0, None
    for batch in loader:  # (N, 3, S, S) per case
        total += batch.shape[0]
        shape = list(batch.shape[1:])
    elapsed = time.perf_counter() - start
    return {"kind": "data", "format": fmt, "stage": "load+preprocess", "workers": workers, "threads": threads,
            "slices": total,
            "seconds": elapsed, "slices_per_s": total / elapsed, "slice_shape": shape,
            "source": f"{args.side}x{args.side}x{args.slices}"}


def cohort_records(root: Path, paths: list[Path], slices: int) -> list[dict]:
    """One record per slice of each case, paths relative to ``root`` (as a cohort manifest)."""
    return [
        {"image_path": path.relative_to(root).as_posix(), "label": 0.0, "class_name": "scan", "mask_path": "",
         "slice_index": k}
        for path in paths
        for k in range(slices)
    ]


def _worker_stats(batch: list[dict]) -> dict:
    """Collate in the loading process: its cache counters (each worker has its own cache)."""
    info = torch.utils.data.get_worker_info()
    dataset = info.dataset if info is not None else batch[0]["_dataset"]
    return {"worker": -1 if info is None else info.id, "items": len(batch), **dataset.volume_cache.stats()}


class _Tagged(ManifestDataset):
    """ManifestDataset whose items name it, so the main-process collate finds its cache."""

    def __getitem__(self, index):
        item = super().__getitem__(index)
        item["_dataset"] = self
        return item


def measure_cohort(fmt: str, root: Path, paths: list[Path], args: argparse.Namespace, workers: int,
                   cache_cases: int | None, order_name: str) -> dict:
    """One epoch of slice records; ``cache_cases``: budget in cases (None: no cache); ``order_name``:
    ``manifest``, ``shuffled`` (uniform over slices) or ``case-local`` (training's order, windows of 2)."""
    records = cohort_records(root, paths, args.slices)
    case_bytes = 4 * args.side * args.side * args.slices
    budget = 0 if cache_cases is None else cache_cases * case_bytes + 1024
    dataset = _Tagged(records, root, cache_bytes=budget)
    order = None
    if order_name == "shuffled":
        order = torch.randperm(len(records), generator=torch.Generator().manual_seed(args.seed)).tolist()
    elif order_name == "case-local":
        order = case_local_order(case_keys(records), args.seed, window=2).tolist()
    loader = DataLoader(dataset, batch_size=4, sampler=order, num_workers=workers, collate_fn=_worker_stats)
    start = time.perf_counter()
    last: dict[int, dict] = {}
    for stats in loader:
        last[stats["worker"]] = stats
    elapsed = time.perf_counter() - start
    reads = len(records) if cache_cases is None else sum(s["misses"] for s in last.values())
    return {"kind": "data", "format": fmt, "stage": "cohort", "workers": workers, "order": order_name,
            "cache": "off" if cache_cases is None else f"{cache_cases} case(s)", "cases": len(paths),
            "slices": len(records), "reads": reads, "reads_per_case": reads / len(paths),
            "seconds": elapsed, "slices_per_s": len(records) / elapsed, "source": f"{args.side}x{args.side}x{args.slices}"}


def run(args: argparse.Namespace) -> list[dict]:
    emit({"kind": "host", **host_info(torch.device("cpu"))}, args.jsonl)
    records = []
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="aaclip_bench_") as tmp:
        for fmt in args.formats:
            paths = write_cases(Path(tmp), fmt, args)
            records.append(measure_load(fmt, paths, args.slices))
            emit(records[-1], args.jsonl)
            for workers in args.workers:
                for threads in args.main_threads if workers == 0 else [default_threads]:
                    # Small per-slice ops in the main process suffer from intra-op threading on a
                    # loaded host; measure torch's default and a single thread.
                    torch.set_num_threads(threads or default_threads)
                    records.append(measure_pipeline(fmt, paths, args, workers))
                    emit(records[-1], args.jsonl)
                torch.set_num_threads(default_threads)
            if args.cohort:
                settings = [(None, "manifest"), (args.cases, "manifest"), (args.cases, "shuffled"), (1, "shuffled"), (2, "shuffled"),
                            (2, "case-local")]
                for workers in args.workers:
                    for cache_cases, order_name in settings:
                        records.append(measure_cohort(fmt, Path(tmp), paths, args, workers, cache_cases, order_name))
                        emit(records[-1], args.jsonl)
    print()
    print_table(records, ["format", "stage", "workers", "threads", "order", "cache", "slices", "reads",
                          "seconds", "slices_per_s"])
    return records


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
