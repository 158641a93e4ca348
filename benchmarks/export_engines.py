"""Exported graphs against torch: s/image, fraction of the fp32 matmul probe, peak RSS, accuracy.

Usage (defaults: ViT-L-14-336 at 518 px, random weights, CPU, batch 1 and 4)::

    python benchmarks/export_engines.py
    python benchmarks/export_engines.py --backbone ViT-B-16 --engines torch-fast-fp32 ort-fp32 ort-int8 ov-fp32 ov-int8

Engines:

- ``torch-fast-fp32`` / ``torch-fast-bf16`` / ``torch-fast-int8``: the package's fast path
  (:class:`aaclip_med.model.fast.FastPredictor`; int8 = dynamic int8 linears), with the weight
  layout it picks on this CPU (oneDNN blocked where PyTorch has oneDNN);
- ``torch-plain-fp32`` / ``torch-plain-bf16``: the same path with the plain layout (``F.linear``,
  the fast path before the oneDNN layout) to show what the layout buys;
- ``ort-fp32`` / ``ort-int8``: the exported ONNX graph in ONNX Runtime (CPU provider); int8 is the
  static QDQ graph of ``aaclip-med export --precision int8``;
- ``ov-fp32`` / ``ov-int8``: the same graphs converted to OpenVINO IR, run by OpenVINO's CPU plugin
  in f32 precision (int8 where the graph has QDQ pairs).

Every engine sees the same fixed images. The reference is ``AAClip.predict`` in fp32: fp32 engines
report the max abs difference of the maps (bar 1e-4), reduced-precision ones the map Pearson r and
the image-score Spearman (bar 0.999 / 0.99). int8 graphs are calibrated on ``--calibration-images``
random images (speed does not depend on them). Engines whose package is missing are skipped with a
``skipped`` record naming the package. The fp32 square-matmul probe runs before and after: speeds
are given as achieved GFLOP/s (analytic count, ``benchmarks/flops.py``) over the best probe.

Memory: exporting ViT-L holds the network and its ONNX graph; int8 calibration of ViT-L needs about
13 GB whatever the number of ``--calibration-images`` (``benchmarks/int8_calibration.py``); a
quantisation that fails for memory is reported as ``skipped``.

Prints one JSON line per measurement (``kind``: host, matmul_peak, engine, skipped), then a table.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import PeakMemory, emit, host_info, matmul_peak, print_table
from flops import count_predict_flops
from scipy.stats import spearmanr

from aaclip_med.export.deployed import DeployedModel
from aaclip_med.export.formats import convert_onnx_to_openvino, write_graph
from aaclip_med.export.quantize import quantize_onnx
from aaclip_med.model import AAClipConfig, build_aaclip
from aaclip_med.model.fast import FastPredictor
from aaclip_med.model.graph import AnomalyGraph
from aaclip_med.packages import install_hint
from aaclip_med.units import in_mb

ENGINES = ("torch-fast-fp32", "torch-plain-fp32", "torch-fast-bf16", "torch-plain-bf16", "torch-fast-int8", "ort-fp32",
           "ort-int8", "ov-fp32", "ov-int8")
_PACKAGES = {"ort": "onnxruntime", "ov": "openvino"}
DOMAIN = "medical"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-L-14-336")
    parser.add_argument("--image-size", type=int, default=None, help="default: the backbone preset (518)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--repeats", type=int, default=1, help="timed forwards per engine, batch and round (best kept)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds over all engines (the engines alternate, so a load change hits them alike)")
    parser.add_argument("--calibration-images", type=int, default=4)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-seconds", type=float, default=3.0)
    parser.add_argument("--jsonl", type=Path, help="also append the records to this file")
    return parser.parse_args(argv)


def skip_reason(engine: str) -> str | None:
    """Why ``engine`` cannot run here (its package is missing), or None."""
    package = _PACKAGES.get(engine.split("-")[0])
    if package and importlib.util.find_spec(package) is None:
        return f"{package} is not installed ({install_hint('export')})"
    if engine.endswith("int8") and package and importlib.util.find_spec("onnx") is None:
        return f"onnx is not installed ({install_hint('export')})"
    return None


class _Graphs:
    """The exported files, made on first use in a temporary folder: fp32 ONNX, int8 ONNX, their IRs."""

    def __init__(self, graph: AnomalyGraph, folder: Path, calibration: np.ndarray) -> None:
        self.graph, self.folder, self.calibration = graph, folder, calibration
        self.paths: dict[str, Path] = {}
        self.failed: dict[str, str] = {}

    def _make(self, name: str) -> Path:
        sub = self.folder / name
        sub.mkdir()
        if name == "onnx-fp32":
            return write_graph(self.graph, sub, "onnx")
        if name == "onnx-int8":
            quantize_onnx(self.path("onnx-fp32"), sub / "model.onnx", self.calibration)
            return sub / "model.onnx"
        convert_onnx_to_openvino(self.path(f"onnx-{name[-4:]}"), sub / "model.xml")
        return sub / "model.xml"

    def path(self, name: str) -> Path:
        if name in self.failed:
            raise RuntimeError(self.failed[name])
        if name not in self.paths:
            start = time.perf_counter()
            try:
                with PeakMemory(torch.device("cpu")) as memory:
                    self.paths[name] = self._make(name)
            except (MemoryError, RuntimeError, OSError) as err:
                self.failed[name] = f"making {name} failed: {type(err).__name__}: {str(err)[:200]}"
                raise RuntimeError(self.failed[name]) from err
            emit({"kind": "export", "graph": name, "seconds": round(time.perf_counter() - start, 1),
                  "peak_rss_mb": round(memory.peak_mb), "file_mb": round(_size_mb(self.paths[name]))})
        return self.paths[name]


def _size_mb(path: Path) -> float:
    return in_mb(sum(p.stat().st_size for p in path.parent.iterdir()))


def _card_folder(path: Path, fmt: str, precision: str, graph: AnomalyGraph) -> Path:
    """A minimal card beside ``path`` so DeployedModel (the runner users get) loads it."""
    from aaclip_med.export.card import build_card, file_records, write_card
    from aaclip_med.export.formats import output_names

    config = graph.config
    record = {"backbone": config.backbone, "image_size": config.image_size}
    card = build_card(record, fmt=fmt, file=path.name, precision=precision, class_name="scan", description="scan",
                      domain=DOMAIN, preset=None, levels=list(config.levels), logit_scale=config.logit_scale,
                      outputs=output_names(graph), opset=17, versions={}, files=file_records([path]))
    write_card(card, path.parent)
    return path.parent


def make_runner(engine: str, model, graph: AnomalyGraph, graphs: _Graphs, anchors: torch.Tensor):
    """``images (B, 3, S, S) -> (map, image score)`` for ``engine``."""
    kind, _, precision = engine.rpartition("-")
    if kind in ("torch-fast", "torch-plain"):
        fast = FastPredictor(model, precision=precision, layout="plain" if kind == "torch-plain" else None)
        return lambda images: fast(images, anchors, DOMAIN)[:2]
    onnx = graphs.path(f"onnx-{precision}")
    if kind == "ort":
        deployed = DeployedModel(_card_folder(onnx, "onnx", precision, graph), "onnxruntime")
    else:
        deployed = DeployedModel(_card_folder(graphs.path(f"ov-{precision}"), "openvino", precision, graph), "openvino")
    return lambda images: deployed(images, anchors, DOMAIN)[:2]


def accuracy(ref_maps: torch.Tensor, ref_scores: torch.Tensor, got) -> dict:
    ref_map, map_ = ref_maps.flatten().double(), got[0].flatten().double()
    return {
        "map_max_abs_diff": float((ref_map - map_).abs().max()),
        "map_pearson": float(torch.corrcoef(torch.stack([ref_map, map_]))[0, 1]),
        "score_spearman": float(spearmanr(ref_scores.numpy(), got[1].numpy()).statistic) if len(ref_scores) > 2 else None,
    }


def time_engine(runner, images: torch.Tensor, repeats: int) -> tuple[float, float, tuple]:
    """Best seconds per forward of ``images`` over ``repeats``, the peak RSS meanwhile (MB), the outputs."""
    with PeakMemory(torch.device("cpu")) as memory:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            out = runner(images)
            best = min(best, time.perf_counter() - start)
    return best, memory.peak_mb, tuple(t.detach().float().cpu() for t in out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    cpu = torch.device("cpu")
    emit(host_info(cpu) | {"kind": "host", "script": "export_engines.py"}, args.jsonl)
    peaks = [matmul_peak(torch.float32, cpu, args.matmul_size, args.matmul_seconds)]
    emit(peaks[0], args.jsonl)

    torch.manual_seed(0)
    config = AAClipConfig(backbone=args.backbone, image_size=args.image_size, pretrained="random")
    model = build_aaclip(config).eval()
    size = model.config.image_size
    with torch.no_grad():
        anchors = model.text_anchors("scan")
        graph = AnomalyGraph(model, "scan", DOMAIN).eval()
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(max(args.batch_sizes), 3, size, size, generator=generator)
    calibration = torch.randn(args.calibration_images, 3, size, size, generator=generator).numpy()
    with torch.inference_mode():
        reference = model.predict(images, anchors, DOMAIN)[:2]
    flops_per_image = count_predict_flops(model.config, 1)["total"]

    rows = []
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        graphs = _Graphs(graph, Path(tmp), calibration)
        runners = {}
        for engine in args.engines:
            reason = skip_reason(engine)
            try:
                runners[engine] = None if reason else make_runner(engine, model, graph, graphs, anchors)
            except RuntimeError as err:
                reason = str(err)
            if reason:
                runners.pop(engine, None)
                emit({"kind": "skipped", "engine": engine, "reason": reason}, args.jsonl)
                continue
            runners[engine](images[:1])  # warm-up: kernel selection, graph compilation
        # every engine in every round, so the ratios compare forwards run close in time
        best: dict[tuple[str, int], tuple[float, float, tuple]] = {}
        for _ in range(args.rounds):
            for batch in sorted(args.batch_sizes):
                for engine, runner in runners.items():
                    got = time_engine(runner, images[:batch], args.repeats)
                    kept = best.get((engine, batch))
                    best[engine, batch] = got if kept is None or got[0] < kept[0] else (kept[0], max(kept[1], got[1]), kept[2])
        largest = max(args.batch_sizes)
        for engine in runners:
            full = best[engine, largest][2]  # accuracy on the largest batch (every batch size computes the same)
            for batch in sorted(args.batch_sizes):
                seconds, peak_mb, _out = best[engine, batch]
                record = {"kind": "engine", "engine": engine, "backbone": model.config.backbone, "image_size": size,
                          "batch": batch, "s_per_image": seconds / batch, "peak_rss_mb": round(peak_mb),
                          "rounds": args.rounds, "gflops": flops_per_image * batch / seconds / 1e9,
                          **accuracy(reference[0][:len(full[0])], reference[1][:len(full[0])], full)}
                emit(record, args.jsonl)
                rows.append(record)
        runners.clear()
        gc.collect()
    peaks.append(matmul_peak(torch.float32, cpu, args.matmul_size, args.matmul_seconds))
    emit(peaks[-1], args.jsonl)
    best_peak = max(p["peak_gflops"] for p in peaks)
    fp32 = {r["batch"]: r["s_per_image"] for r in rows if r["engine"] == "torch-fast-fp32"}
    for row in rows:
        row["fraction_of_fp32_probe"] = row["gflops"] / best_peak
        row["speedup_vs_torch_fast_fp32"] = fp32[row["batch"]] / row["s_per_image"] if row["batch"] in fp32 else None
    print_table(rows, ["engine", "batch", "s_per_image", "fraction_of_fp32_probe", "speedup_vs_torch_fast_fp32",
                       "peak_rss_mb", "map_max_abs_diff", "map_pearson", "score_spearman"])
    probes = ", ".join(f"{p['peak_gflops']:.1f}" for p in peaks)
    print(f"fp32 matmul probe: best {best_peak:.1f} GFLOP/s (before, after: {probes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
