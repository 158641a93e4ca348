"""Inference speed, peak memory, FLOP efficiency and bf16 accuracy of AA-CLIP ``predict``.

Usage (defaults: the paper's ViT-L-14-336 at 518 px, random weights, CPU)::

    python benchmarks/forward.py --batch-sizes 1 4 --paths reference fast-fp32 fast-bf16
    python benchmarks/forward.py --device cuda --batch-sizes 1 8 32 --paths fast-fp32 fast-bf16

Paths: ``reference`` is ``AAClip.predict`` in fp32 under ``torch.inference_mode`` (the reference
path); ``fast-<precision>`` is :class:`aaclip_med.model.fast.FastPredictor` (frozen weights
prepared once in that precision, fused attention, fp32 heads and maps; precision fp32, bf16, fp16
or int8). Every path sees the same fixed images, so the reduced-precision maps are compared with
the fp32 ones (Pearson r over all pixels, Spearman of the image scores) in the same run. The
square-matmul peak of each dtype is measured before and after the model runs (int8 paths are
divided by the fp32 peak: that fraction above 1 is their gain), and achieved GFLOP/s use the
analytic count of benchmarks/flops.py.

On a CPU without native bf16 (no avx512_bf16 / amx_bf16) PyTorch emulates bf16 at a few GFLOP/s:
a ViT-L bf16 forward takes minutes there, so bf16 paths are skipped with a ``skipped`` record
unless ``--allow-emulated-bf16`` (``benchmarks/block.py`` measures one block instead).

Prints one JSON line per measurement (``kind``: host, matmul_peak, forward, skipped, speedup,
accuracy), then a table.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import PeakMemory, emit, host_info, matmul_peak, print_table, synchronize
from _variants import ATTENTION, VariantPredictor
from flops import count_predict_flops
from scipy.stats import spearmanr

from aaclip_med.model import AAClipConfig, Prediction, build_aaclip
from aaclip_med.precision import cpu_supports_bf16

# dtype of the matmul peak each path is compared with (int8 against fp32: its gain over fp32)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-L-14-336")
    parser.add_argument("--image-size", type=int, default=None, help="default: the backbone preset (518)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--paths",
        nargs="+",
        default=["reference", "fast-fp32", "fast-bf16"],
        help="reference and/or fast-fp32 / fast-bf16 / fast-fp16 / fast-int8",
    )
    parser.add_argument("--attention", default="sdpa", choices=ATTENTION, help="attention of the fast paths")
    parser.add_argument(
        "--allow-emulated-bf16",
        action="store_true",
        help="run bf16 paths on a CPU without native bf16 too (minutes per ViT-L image)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed forwards per (path, batch)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed forwards first (0: time the first)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast paths' vision tower")
    parser.add_argument("--domain", default="medical", choices=["medical", "industrial"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--matmul-size", type=int, default=None, help="default 2048 on CPU, 8192 on GPU")
    parser.add_argument("--matmul-seconds", type=float, default=3.0)
    parser.add_argument(
        "--local-peak-seconds",
        type=float,
        default=1.0,
        help="short matmul peak measured right before each forward (0: off); shared hosts drift",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jsonl", type=Path, default=None, help="also append the JSON lines to this file")
    return parser.parse_args(argv)


def fixed_images(count: int, size: int, seed: int, device: torch.device) -> torch.Tensor:
    """A fixed, varied set of CLIP-normalised-looking images (B, 3, S, S).

    Each image is a smooth random field plus noise of its own amplitude, so images differ in
    content and scores spread (plain i.i.d. noise gives nearly tied scores and a meaningless
    Spearman).
    """
    gen = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(torch.randn(count, 3, 8, 8, generator=gen), size=(size, size), mode="bicubic")
    amplitude = torch.linspace(0.2, 1.5, count).view(count, 1, 1, 1)
    noise = torch.randn(count, 3, size, size, generator=gen)
    return (smooth + amplitude * noise).to(device)


def pool_offsets(batch_sizes: list[int]) -> list[int]:
    """Start of each batch in the image pool: every batch gets images of its own."""
    offsets, start = [], 0
    for batch in batch_sizes:
        offsets.append(start)
        start += batch
    return offsets


def make_runner(model, path: str, compile_: bool, attention: str = "sdpa"):
    """A callable ``(images, anchors, domain) -> Prediction`` for a benchmark path name."""
    if path == "reference":

        def reference(images, anchors, domain):
            with torch.inference_mode():
                return model.predict(images, anchors, domain)

        return reference
    precision = path.removeprefix("fast-")
    return VariantPredictor(model, precision=precision, attention=attention, compile=compile_)


def time_path(run, images, anchors, args, device) -> tuple[Prediction, list[float], PeakMemory]:
    for _ in range(args.warmup):
        run(images, anchors, args.domain)
    times = []
    with PeakMemory(device) as memory:
        for _ in range(max(1, args.repeats)):
            synchronize(device)
            start = time.perf_counter()
            out = run(images, anchors, args.domain)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return out, times, memory


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-300))


def accuracy_records(outputs: dict[str, list[Prediction]]) -> list[dict]:
    """Each reduced-precision path vs the fp32 reference (or fast-fp32) over all timed images."""
    base_name = "reference" if "reference" in outputs else "fast-fp32" if "fast-fp32" in outputs else None
    if base_name is None:
        return []
    base = outputs[base_name]
    records = []
    for name, preds in outputs.items():
        if name == base_name:
            continue
        maps = [pearson(p.anomaly_map[i], q.anomaly_map[i]) for p, q in zip(preds, base) for i in range(len(p[0]))]
        scores = torch.cat([p.image_score for p in preds]).cpu()
        ref_scores = torch.cat([q.image_score for q in base]).cpu()
        all_a = torch.cat([p.anomaly_map.flatten() for p in preds])
        all_b = torch.cat([q.anomaly_map.flatten() for q in base])
        rho = float(spearmanr(scores.numpy(), ref_scores.numpy()).statistic) if len(scores) > 2 else None
        records.append(
            {
                "kind": "accuracy",
                "path": name,
                "vs": base_name,
                "images": len(scores),
                "map_pearson_pooled": pearson(all_a, all_b),
                "map_pearson_min_per_image": min(maps),
                "score_spearman": rho,
                "score_max_abs_diff": float((scores - ref_scores).abs().max()),
            }
        )
    return records


def path_dtype(path: str) -> str:
    """Name of the matmul peak a path is compared with (``fp32`` for reference and int8)."""
    name = "fp32" if path == "reference" else path.removeprefix("fast-")
    return str(_DTYPES[name]).replace("torch.", "").replace("float32", "fp32").replace("bfloat16", "bf16").replace(
        "float16", "fp16"
    )


def measure_peaks(args, device) -> dict[str, dict]:
    size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    dtypes = {path_dtype(p) for p in ["reference", *args.paths]}
    return {name: matmul_peak(_DTYPES[name], device, size, args.matmul_seconds) for name in sorted(dtypes)}


def skip_reason(path: str, device: torch.device, args) -> str | None:
    """Why a path is not run on this host (None: it runs)."""
    if device.type == "cpu" and path.endswith("bf16") and not cpu_supports_bf16() and not args.allow_emulated_bf16:
        return ("this CPU has no native bf16 (no avx512_bf16/amx_bf16): PyTorch emulates it at a few GFLOP/s; "
                "see block.py, or pass --allow-emulated-bf16")
    if path == "fast-int8" and device.type != "cpu":
        return "int8 dynamic quantisation runs on the CPU only"
    return None


def measure_forward(runner, path, images, anchors, model, args, device) -> tuple[dict, Prediction]:
    """Time one (path, batch); a short matmul peak of the same dtype is measured just before."""
    dtype = path_dtype(path)
    local_peak = None
    if args.local_peak_seconds > 0:
        size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
        local_peak = matmul_peak(_DTYPES[dtype], device, size, args.local_peak_seconds)["peak_gflops"]
    pred, times, memory = time_path(runner, images, anchors, args, device)
    batch = images.shape[0]
    best = min(times)
    flops = count_predict_flops(model.config, batch=batch)["total"]
    record = {
        "kind": "forward",
        "backbone": args.backbone,
        "image_size": model.config.image_size,
        "device": str(device),
        "path": path,
        "dtype": dtype,
        "precision": "fp32" if path == "reference" else path.removeprefix("fast-"),
        "attention": None if path == "reference" else args.attention,
        "batch": batch,
        "repeats": len(times),
        "warmup": args.warmup,
        "compile": args.compile and path != "reference",
        "seconds_per_batch": best,
        "seconds_per_image": best / batch,
        "images_per_s": batch / best,
        "peak_mb": round(memory.peak_mb, 1),
        "peak_delta_mb": round(memory.delta_mb, 1),
        "tflop_per_image": flops / batch / 1e12,
        "achieved_gflops": flops / best / 1e9,
        "local_matmul_peak_gflops": local_peak,
        "fraction_of_local_peak": None if local_peak is None else flops / best / 1e9 / local_peak,
    }
    return record, Prediction(*(t.detach().float().cpu() for t in pred))


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    host = {"kind": "host", **host_info(device), "cpu_native_bf16": cpu_supports_bf16()}
    emit(host, args.jsonl)
    skipped = {path: reason for path in args.paths if (reason := skip_reason(path, device, args))}
    for path, reason in skipped.items():
        emit({"kind": "skipped", "path": path, "reason": reason}, args.jsonl)
    args.paths = [path for path in args.paths if path not in skipped]
    peaks_before = measure_peaks(args, device)
    for record in peaks_before.values():
        emit({**record, "when": "before"}, args.jsonl)

    torch.manual_seed(args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "random weights" warning: random on purpose
        build_start = time.perf_counter()
        config = AAClipConfig(backbone=args.backbone, image_size=args.image_size, pretrained="random")
        model = build_aaclip(config).eval().to(device)
    anchors = model.text_anchors("scan")
    size = model.config.image_size
    pool = fixed_images(sum(args.batch_sizes), size, args.seed, device)
    logging.getLogger(__name__).info("model built in %.1f s", time.perf_counter() - build_start)

    records: list[dict] = []
    outputs: dict[str, list[Prediction]] = {path: [] for path in args.paths}
    runners = {path: make_runner(model, path, args.compile, args.attention) for path in args.paths}
    # Paths alternate within each batch size, so that the ratios compare forwards run close in
    # time; on a shared machine the load drifts over minutes.
    for batch, offset in zip(args.batch_sizes, pool_offsets(args.batch_sizes)):
        images = pool[offset : offset + batch]
        for path in args.paths:
            record, pred = measure_forward(runners[path], path, images, anchors, model, args, device)
            outputs[path].append(pred)
            records.append(record)
            emit(record, args.jsonl)

    peaks_after = measure_peaks(args, device)
    for record in peaks_after.values():
        emit({**record, "when": "after"}, args.jsonl)
    peaks = {k: max(peaks_before[k]["peak_gflops"], peaks_after[k]["peak_gflops"]) for k in peaks_before}
    for record in records:
        record["matmul_peak_gflops"] = peaks[record["dtype"]]
        record["fraction_of_peak"] = record["achieved_gflops"] / peaks[record["dtype"]]
    records += speedup_records(records)
    for record in accuracy_records(outputs):
        emit(record, args.jsonl)
        records.append(record)
    summarise(records, args.jsonl)
    return records


def speedup_records(records: list[dict]) -> list[dict]:
    """Each fast path vs the fp32 reference, and each reduced precision vs fast-fp32, per batch size."""
    forward = {(r["path"], r["batch"]): r for r in records if r["kind"] == "forward"}
    out = []
    for (path, batch), record in forward.items():
        if path == "reference":
            continue
        for base in ("reference", "fast-fp32"):
            if base != path and (base, batch) in forward:
                ratio = forward[(base, batch)]["seconds_per_batch"] / record["seconds_per_batch"]
                out.append({"kind": "speedup", "path": path, "vs": base, "batch": batch, "speedup": ratio})
    return out


def summarise(records: list[dict], jsonl: Path | None) -> None:
    for record in records:
        if record["kind"] in ("forward", "speedup"):
            emit({**record, "final": True}, jsonl) if record["kind"] == "forward" else emit(record, jsonl)
    print()
    forward = [r for r in records if r["kind"] == "forward"]
    print_table(
        forward,
        ["path", "batch", "seconds_per_image", "images_per_s", "peak_mb", "achieved_gflops",
         "matmul_peak_gflops", "fraction_of_peak", "fraction_of_local_peak"],
    )
    rest = [r for r in records if r["kind"] in ("speedup", "accuracy")]
    if rest:
        print()
        print_table(rest, ["kind", "path", "vs", "batch", "speedup", "map_pearson_pooled",
                           "map_pearson_min_per_image", "score_spearman"])


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
