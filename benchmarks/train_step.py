"""Seconds per training step and peak memory of AA-CLIP's two stages (random weights, no download).

Each measurement runs in its own subprocess so that the peak RSS (``ru_maxrss``) belongs to it
alone. A step is what the training engine does: forward under the precision's autocast (fp32
master weights, fp32 losses), backward, Adam step (a GradScaler for fp16 on CUDA).

Prints a ``host`` line (CPU model, its bf16 flags, load), the square-matmul peak of fp32 and bf16
measured in the same run, one JSON line per measurement, then a table with each precision's
speed-up over fp32 for the same step and batch.

The analytic bound of a step: the multiply-adds it executes (forward, and backward through what
needs gradients: for Stage 2 the activation gradients through every frozen block down to the
first adapter, and no backbone weight gradients, since the frozen weights do not require them),
counted by ``torch.utils.flop_counter`` on one extra untimed step, divided by the matmul peak of
the step's dtype measured in the same run. ``fraction_of_bound`` = bound seconds / measured
seconds (1.0: every FLOP at the square-matmul rate); ``backward_over_forward`` is the counted
backward FLOPs over the forward's (about 1 when only activation gradients flow, about 2 when
weight gradients are computed too).

    python benchmarks/train_step.py                       # ViT-L-14-336 at 518: stage1 b2, b16; stage2 b2; two copies
    python benchmarks/train_step.py --only stage2 --batch 2 --precision fp32 bf16
    python benchmarks/train_step.py --only stage1 --batch 2 --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import resource
import subprocess
import sys
import time
import warnings

import torch
from _common import host_info, matmul_peak

from aaclip_med.precision import PRECISIONS, autocast, precision_dtype, resolve_precision
from aaclip_med.training.config import TrainConfig, default_stage_config
from aaclip_med.units import in_mb

DEFAULT_RUNS = [("stage1", 2), ("stage1", 16), ("stage2", 2), ("two-copies", 2)]


def _batch(model, batch: int, device: torch.device) -> dict:
    size = model.config.image_size
    mask = torch.zeros(batch, 1, size, size, device=device)
    mask[:, :, size // 3 : size // 2, size // 3 : size // 2] = 1.0
    return {"image": torch.randn(batch, 3, size, size, device=device), "mask": mask,
            "label": torch.ones(batch, device=device), "class_name": ["object"] * batch}


def _loss_fn(model, kind: str, batch: dict, feature_chunk: int | None):
    from aaclip_med.training.objectives import fixed_anchor_table, stack_anchors, stage1_losses, stage2_losses

    if kind == "stage2":
        anchors = stack_anchors(fixed_anchor_table(model, ["object"]), ["object"] * len(batch["class_name"]))
        return lambda: stage2_losses(model, batch, anchors)["loss"]
    # our Stage 1 runs the frozen image side in chunks (TrainConfig.stage1_feature_chunk); the
    # public code's way (two-copies) runs the whole batch at once
    chunk = feature_chunk if kind == "stage1" else None
    weight = TrainConfig(out_dir="").disentangle_weight
    return lambda: stage1_losses(model, batch, ["object"] * len(batch["class_name"]), weight, feature_chunk=chunk)["loss"]


def _child(args: argparse.Namespace) -> dict:
    from aaclip_med.model import AAClipConfig, build_aaclip
    from aaclip_med.training.freeze import freeze_for_stage

    device = torch.device(args.device)
    precision = resolve_precision(args.precision[0], device)
    torch.manual_seed(0)  # same weights and batch for every precision: their losses compare
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_aaclip(AAClipConfig(backbone=args.backbone, pretrained="random")).to(device)
    spare = copy.deepcopy(model.clip) if args.kind == "two-copies" else None  # the public code's 2nd CLIP
    model.set_grad_checkpointing(args.grad_checkpointing)
    params = freeze_for_stage(model, 2 if args.kind == "stage2" else 1)
    stage_cfg = default_stage_config(2 if args.kind == "stage2" else 1)  # the paper's Adam settings
    optimizer = torch.optim.Adam(params, lr=stage_cfg.lr, betas=stage_cfg.betas)
    batch = _batch(model, args.batch, device)
    loss_fn = _loss_fn(model, args.kind, batch, args.feature_chunk or None)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None
    flops = _count_step_flops(loss_fn, precision, device, optimizer) if args.count_flops else {}
    times = []
    for step in range(args.warmup + args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
            if step == args.warmup:
                torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision, device):
            loss = loss_fn()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    result = {"kind": args.kind, "batch": args.batch, "backbone": args.backbone, "image_size": model.config.image_size,
              "device": str(device), "precision": precision, "loss": float(loss.detach()), "grad_checkpointing": args.grad_checkpointing,
              "feature_chunk": (args.feature_chunk or None) if args.kind == "stage1" else None,
              "seconds_per_step": min(times), "peak_rss_mb": in_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),  # KiB
              "threads": torch.get_num_threads(), **flops}
    if device.type == "cuda":
        result["cuda_max_allocated_mb"] = in_mb(torch.cuda.max_memory_allocated())
    del spare
    return result


def _count_step_flops(loss_fn, precision: str, device: torch.device, optimizer) -> dict:
    """FLOPs of one step's forward and backward (untimed), as ``torch.utils.flop_counter`` counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    optimizer.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        with autocast(precision, device):
            loss = loss_fn()
        forward = counter.get_total_flops()
        loss.backward()
    total = counter.get_total_flops()
    optimizer.zero_grad(set_to_none=True)
    return {"forward_flops": forward, "step_flops": total,
            "backward_over_forward": (total - forward) / forward if forward else None}


def _parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-L-14-336")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=PRECISIONS, nargs="+", default=["fp32"],
                        help="autocast precision(s) of the step (auto: what training would pick on this device); "
                        "several give speed-ups over fp32 of the same run")
    parser.add_argument("--matmul-seconds", type=float, default=2.0,
                        help="seconds of the fp32/bf16 square-matmul peak measured in the same run (0: off)")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--feature-chunk", type=int, default=2,
                        help="images per frozen Stage-1 image forward (training default 2; 0: whole batch)")
    parser.add_argument("--only", choices=["stage1", "stage2", "two-copies"], help="one kind of step")
    parser.add_argument("--batch", type=int, nargs="*", help="batch sizes for --only")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 1 on GPU, 0 on CPU)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--no-count-flops", dest="count_flops", action="store_false",
                        help="skip the untimed step that counts the FLOPs of the analytic bound")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 1 if args.device.startswith("cuda") else 0
    return args


def _runs(args: argparse.Namespace) -> list[tuple[str, int]]:
    if args.only:
        return [(args.only, b) for b in (args.batch or [2])]
    return DEFAULT_RUNS


def _spawn(args: argparse.Namespace, kind: str, batch: int, precision: str) -> dict:
    argv = [sys.executable, __file__, "--child", kind, "--backbone", args.backbone, "--device", args.device,
            "--precision", precision, "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--batch", str(batch),
            "--feature-chunk", str(args.feature_chunk)]
    argv += ["--grad-checkpointing"] if args.grad_checkpointing else []
    argv += [] if args.count_flops else ["--no-count-flops"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "batch": batch, "precision": precision, "error": f"timed out after {args.timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"kind": kind, "batch": batch, "precision": precision,
                "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(lines[-1])


def _peaks(args: argparse.Namespace) -> dict[str, float]:
    """Square-matmul peaks (GFLOP/s) of fp32 and bf16 in this run, printed as JSON lines."""
    if args.matmul_seconds <= 0:
        return {}
    device, size = torch.device(args.device), 2048 if args.device.startswith("cuda") else 1024
    peaks = {}
    for name in ("fp32", "bf16"):
        record = matmul_peak(precision_dtype(name) or torch.float32, device, size, args.matmul_seconds)
        print(json.dumps(record), flush=True)
        peaks[name] = record["peak_gflops"]
    return peaks


def _bounds(rows: list[dict], peaks: dict[str, float]) -> None:
    """Each row's analytic bound (its counted FLOPs at the matmul peak of its dtype) and its fraction of it."""
    for r in rows:
        peak = peaks.get("bf16" if r.get("precision") == "bf16" else "fp32")
        if "error" not in r and r.get("step_flops") and peak:
            r["bound_seconds"] = r["step_flops"] / (peak * 1e9)
            r["fraction_of_bound"] = r["bound_seconds"] / r["seconds_per_step"]


def _speedups(rows: list[dict]) -> None:
    """Each row's fp32 seconds of the same step and batch divided by its own (``speedup_vs_fp32``)."""
    fp32 = {(r["kind"], r["batch"]): r["seconds_per_step"] for r in rows if r.get("precision") == "fp32" and "error" not in r}
    for r in rows:
        base = fp32.get((r["kind"], r["batch"]))
        if base and "error" not in r:
            r["speedup_vs_fp32"] = base / r["seconds_per_step"]


def main(argv=None) -> int:
    args = _parse(argv)
    if args.child:
        args.kind, args.batch = args.child, (args.batch or [2])[0]
        print(json.dumps(_child(args)))
        return 0
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps({"kind": "host", **host_info(torch.device(args.device))}), flush=True)
    peaks = _peaks(args)
    rows = []
    for kind, batch in _runs(args):
        for precision in args.precision:  # precisions alternate per step kind: ratios compare close runs
            row = _spawn(args, kind, batch, precision)
            print(json.dumps(row), flush=True)
            rows.append(row)
    _speedups(rows)
    _bounds(rows, peaks)
    peak_text = ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()) or "not measured"
    print(f"\nmatmul peak in this run: {peak_text}")
    print(f"{'step':<12}{'batch':>6}{'precision':>10}{'s/step':>10}{'x fp32':>8}{'of bound':>10}{'bwd/fwd':>9}"
          f"{'peak RSS MB':>14}{'CUDA MB':>10}")
    for r in rows:
        if "error" in r:
            print(f"{r['kind']:<12}{r['batch']:>6}{r['precision']:>10}  error: {r['error']}")
            continue
        cuda = f"{r['cuda_max_allocated_mb']:.0f}" if "cuda_max_allocated_mb" in r else "-"
        ratio = f"{r['speedup_vs_fp32']:.2f}" if "speedup_vs_fp32" in r else "-"
        bound = f"{r['fraction_of_bound']:.2f}" if "fraction_of_bound" in r else "-"
        backward = f"{r['backward_over_forward']:.2f}" if r.get("backward_over_forward") is not None else "-"
        print(f"{r['kind']:<12}{r['batch']:>6}{r['precision']:>10}{r['seconds_per_step']:>10.2f}{ratio:>8}{bound:>10}"
              f"{backward:>9}{r['peak_rss_mb']:>14.0f}{cuda:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
