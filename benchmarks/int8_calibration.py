"""Memory and time of int8 calibration (``export --precision int8``) against the number of slices.

Usage (defaults: ViT-L-14-336 at 518 px, random weights, 1 and 4 calibration slices)::

    python benchmarks/int8_calibration.py
    python benchmarks/int8_calibration.py --backbone ViT-B-16 --image-size 512 --slices 1 2 8 --paths sliced one-pass

Paths:

- ``sliced``: the package's calibration (:func:`aaclip_med.export.quantize.quantize_onnx`): ranges
  recorded one slice per run in a session without ONNX Runtime's memory pattern, handed to
  ``quantize_static`` as a ranges file;
- ``one-pass``: ONNX Runtime's own calibration, every slice in one ``quantize_static`` call (what
  the package did before, and still does with onnxruntime < 1.28). At ViT-L / 518 it took 22 GB
  for two slices: keep it to ViT-B sizes on a 24 GB machine.

The fp32 graph is exported once; each (path, slices) pair then runs in a fresh process, so each
peak resident set (sampled) is its own. ``parameters_sha`` hashes the int8 graph's scales and zero
points: equal hashes for the two paths at the same slices mean the same quantised graph.

Prints one JSON line per measurement (``kind``: host, calibration), then a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import PeakMemory, emit, host_info, print_table

PATHS = ("sliced", "one-pass")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-L-14-336")
    parser.add_argument("--image-size", type=int, default=None, help="default: the backbone preset (518)")
    parser.add_argument("--slices", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=["sliced"])
    parser.add_argument("--jsonl", type=Path, help="also append the records to this file")
    parser.add_argument("--child", nargs=5, metavar=("FP32", "PATH", "SLICES", "SIZE", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _parameters_sha(path: Path) -> str:
    from aaclip_med.export.quantize import quantisation_parameters

    digest = hashlib.sha256()
    for name, value in sorted(quantisation_parameters(path).items()):
        digest.update(name.encode() + value.tobytes())
    return digest.hexdigest()[:12]


def child(fp32: Path, path: str, slices: int, size: int, out: Path) -> dict:
    """Quantise ``fp32`` on ``slices`` random ``size``-px slices by ``path``; the record (peak RSS, seconds, hash)."""
    from aaclip_med.export.quantize import quantize_onnx

    images = np.random.default_rng(1).normal(size=(slices, 3, size, size)).astype(np.float32)
    start = time.perf_counter()
    with PeakMemory(torch.device("cpu")) as memory:
        quantize_onnx(fp32, out, images, slice_by_slice=path == "sliced")
    return {"kind": "calibration", "path": path, "slices": slices, "image_size": size,
            "seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(memory.peak_mb),
            "added_rss_mb": round(memory.delta_mb), "parameters_sha": _parameters_sha(out)}


def _export(backbone: str, image_size: int | None, folder: Path) -> tuple[Path, int]:
    from aaclip_med.export.formats import write_graph
    from aaclip_med.model import AAClipConfig, build_aaclip
    from aaclip_med.model.graph import AnomalyGraph

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_aaclip(AAClipConfig(backbone=backbone, image_size=image_size, pretrained="random")).eval()
        with torch.no_grad():
            graph = AnomalyGraph(model, "scan", "medical").eval()
        return write_graph(graph, folder, "onnx"), model.config.image_size


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        fp32, path, slices, size, out = args.child
        print(json.dumps(child(Path(fp32), path, int(slices), int(size), Path(out))))
        return 0
    emit(host_info(torch.device("cpu")) | {"kind": "host", "script": "int8_calibration.py"}, args.jsonl)
    rows = []
    with tempfile.TemporaryDirectory(prefix="calibration-bench-") as tmp:
        fp32, size = _export(args.backbone, args.image_size, Path(tmp))
        for slices in args.slices:
            for path in args.paths:
                out = Path(tmp) / f"{path}-{slices}.onnx"
                command = [sys.executable, __file__, "--child", str(fp32), path, str(slices), str(size), str(out)]
                proc = subprocess.run(command, capture_output=True, text=True)
                if proc.returncode != 0:
                    record = {"kind": "skipped", "path": path, "slices": slices,
                              "reason": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
                else:
                    record = json.loads(proc.stdout.strip().splitlines()[-1]) | {"backbone": args.backbone}
                    out.unlink(missing_ok=True)
                emit(record, args.jsonl)
                rows.append(record)
    print_table(rows, ["backbone", "image_size", "path", "slices", "seconds", "peak_rss_mb", "added_rss_mb",
                       "parameters_sha", "reason"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
