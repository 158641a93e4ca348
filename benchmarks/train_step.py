"""Seconds per training step and peak memory of AA-CLIP's two stages (random weights, no download).

Each measurement runs in its own subprocess so that the peak RSS (``ru_maxrss``) belongs to it
alone. Prints one JSON line per measurement, then a short table.

    python benchmarks/train_step.py                       # ViT-L-14-336 at 518: stage1 b2, b16; stage2 b2; two copies
    python benchmarks/train_step.py --only stage1 --batch 2 --device cuda --amp bf16
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
    return lambda: stage1_losses(model, batch, ["object"] * len(batch["class_name"]), feature_chunk=chunk)["loss"]


def _child(args: argparse.Namespace) -> dict:
    from aaclip_med.model import AAClipConfig, build_aaclip
    from aaclip_med.training.engine import autocast_context
    from aaclip_med.training.freeze import freeze_for_stage

    device = torch.device(args.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_aaclip(AAClipConfig(backbone=args.backbone, pretrained="random")).to(device)
    spare = copy.deepcopy(model.clip) if args.kind == "two-copies" else None  # the public code's 2nd CLIP
    model.set_grad_checkpointing(args.grad_checkpointing)
    params = freeze_for_stage(model, 2 if args.kind == "stage2" else 1)
    optimizer = torch.optim.Adam(params, lr=1e-5, betas=(0.5, 0.999))
    batch = _batch(model, args.batch, device)
    loss_fn, autocast = _loss_fn(model, args.kind, batch, args.feature_chunk or None), autocast_context(args.amp, device)
    times = []
    for step in range(args.warmup + args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
            if step == args.warmup:
                torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    result = {"kind": args.kind, "batch": args.batch, "backbone": args.backbone, "image_size": model.config.image_size,
              "device": str(device), "amp": args.amp, "grad_checkpointing": args.grad_checkpointing,
              "feature_chunk": (args.feature_chunk or None) if args.kind == "stage1" else None,
              "seconds_per_step": min(times), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "threads": torch.get_num_threads()}
    if device.type == "cuda":
        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    del spare
    return result


def _parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-L-14-336")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--feature-chunk", type=int, default=2,
                        help="images per frozen Stage-1 image forward (training default 2; 0: whole batch)")
    parser.add_argument("--only", choices=["stage1", "stage2", "two-copies"], help="one kind of step")
    parser.add_argument("--batch", type=int, nargs="*", help="batch sizes for --only")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 1 on GPU, 0 on CPU)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 1 if args.device.startswith("cuda") else 0
    return args


def _runs(args: argparse.Namespace) -> list[tuple[str, int]]:
    if args.only:
        return [(args.only, b) for b in (args.batch or [2])]
    return DEFAULT_RUNS


def _spawn(args: argparse.Namespace, kind: str, batch: int) -> dict:
    argv = [sys.executable, __file__, "--child", kind, "--backbone", args.backbone, "--device", args.device,
            "--amp", args.amp, "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--batch", str(batch),
            "--feature-chunk", str(args.feature_chunk)]
    argv += ["--grad-checkpointing"] if args.grad_checkpointing else []
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "batch": batch, "error": f"timed out after {args.timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"kind": kind, "batch": batch, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(lines[-1])


def main(argv=None) -> int:
    args = _parse(argv)
    if args.child:
        args.kind, args.batch = args.child, (args.batch or [2])[0]
        print(json.dumps(_child(args)))
        return 0
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for kind, batch in _runs(args):
        row = _spawn(args, kind, batch)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n{'step':<12}{'batch':>6}{'s/step':>10}{'peak RSS MiB':>14}{'CUDA MiB':>10}")
    for r in rows:
        if "error" in r:
            print(f"{r['kind']:<12}{r['batch']:>6}  error: {r['error']}")
            continue
        cuda = f"{r['cuda_max_allocated_mib']:.0f}" if "cuda_max_allocated_mib" in r else "-"
        print(f"{r['kind']:<12}{r['batch']:>6}{r['seconds_per_step']:>10.2f}{r['peak_rss_mib']:>14.0f}{cuda:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
