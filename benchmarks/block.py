"""One vision transformer block (ViT-L width by default) in each fast-path variant vs the matmul probe.

Usage::

    python benchmarks/block.py                                   # ViT-L block, 1370 tokens, batch 1
    python benchmarks/block.py --variants reference prepared-fp32-sdpa prepared-int8-sdpa --compile

The block is 1/24 of a ViT-L forward at 518 px (42 GFLOP), so every variant, the compiled ones
and the emulated-bf16 ones on CPUs without native bf16 included, can be measured in seconds.
Variants:

- ``reference``: the open_clip block's own forward in fp32 (``nn.MultiheadAttention``);
- ``autocast-<dt>``: the block's own forward under autocast (casts every weight on every call:
  the old fast path);
- ``prepared-<dt>-<attention>``: :class:`aaclip_med.model.fast.FrozenBlock` with weights
  prepared once (``dt``: fp32, bf16, int8; ``attention``: sdpa, or matmul from ``_variants.py``)
  in the layout the fast path picks (oneDNN blocked on a CPU with oneDNN); ``...-plain``: the
  same with the plain layout (``F.linear``);
- with ``--compile``, every prepared variant also runs under ``torch.compile`` (inductor).

It also times the 518-px map work of spec section 5 on a 37 x 37 grid (4 levels, medical
smoothing): the reference order (each level blurred, upsampled, then summed) vs the fast path's
(levels blurred together, summed on the grid, upsampled once).

Each variant's achieved GFLOP/s is divided by the square matmul probe of its own dtype measured in
the same run (int8 variants by the fp32 probe: their ratio to it is the int8 speed-up); each
variant's output is compared with the reference (relative error). Prints one JSON line per
measurement, then a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from _common import emit, host_info, matmul_peak, print_table, synchronize
from _variants import frozen_block
from open_clip.transformer import ResidualAttentionBlock

from aaclip_med.model import AAClip
from aaclip_med.precision import autocast, cpu_supports_bf16

_PROBE = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}
DEFAULT_VARIANTS = [
    "reference", "autocast-bf16", "prepared-fp32-sdpa", "prepared-fp32-sdpa-plain", "prepared-fp32-matmul",
    "prepared-bf16-sdpa", "prepared-bf16-sdpa-plain", "prepared-bf16-matmul", "prepared-int8-sdpa", "prepared-int8-matmul",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=1370, help="1 + 37 x 37 at 518 px")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    parser.add_argument("--compile", action="store_true", help="also run each prepared variant compiled")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-seconds", type=float, default=2.0)
    parser.add_argument("--map-size", type=int, default=518, help="map work: output side (0: skip)")
    parser.add_argument("--map-grid", type=int, default=37, help="map work: patch grid side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jsonl", type=Path, default=None)
    return parser.parse_args(argv)


def block_flops(width: int, tokens: int, batch: int) -> float:
    """Multiply-adds x 2 of one block: QKV, out-projection, MLP (4x) and the two attention products."""
    linears = 2 * tokens * 12 * width * width
    attention = 2 * 2 * tokens * tokens * width
    return float(batch * (linears + attention))


def make_runner(block, variant: str, device: torch.device, compile_: bool, tokens: int = 1024):
    """``x -> block output`` (fp32) for a variant name."""
    if variant == "reference":
        return block
    kind, dtype, *rest = variant.split("-")
    if kind == "autocast":

        def run(x):
            with autocast(dtype, device):
                return block(x).float()

        return run
    attention = rest[0] if rest else "sdpa"
    runner = frozen_block(block, dtype, attention, "plain" if rest[1:] == ["plain"] else None, rows=tokens)
    return torch.compile(runner.__call__, dynamic=False) if compile_ else runner


def time_runner(run, x, repeats: int, device) -> tuple[torch.Tensor, float, float]:
    """(output, first call seconds (compile included), best of the timed calls); ``x`` None: ``run()``."""
    if x is None:
        return time_runner(lambda _: run(), 0, repeats, device)
    synchronize(device)
    start = time.perf_counter()
    out = run(x)
    synchronize(device)
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return out, first, best


def map_records(args: argparse.Namespace) -> list[dict]:
    """Time the map work in the reference order and summed on the grid (same map up to rounding)."""
    gen = torch.Generator().manual_seed(args.seed)
    logits = [torch.randn(args.batch, 2, args.map_grid, args.map_grid, generator=gen) * 30 for _ in range(4)]
    size = (args.map_size, args.map_size)
    out, records = {}, []
    for order, sum_first in (("upsample-then-sum", False), ("sum-then-upsample", True)):
        run_once = lambda sf=sum_first: AAClip.anomaly_map(None, logits, "medical", size, sum_first=sf)  # noqa: E731
        out[order], _, best = time_runner(run_once, None, max(5, args.repeats), torch.device("cpu"))
        records.append({"kind": "maps", "order": order, "batch": args.batch, "size": args.map_size, "seconds": best})
    diff = float((out["sum-then-upsample"] - out["upsample-then-sum"]).abs().max())
    for record in records:
        record["speedup_vs_reference_order"] = records[0]["seconds"] / record["seconds"]
        record["max_abs_diff"] = diff
    return records


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    emit({"kind": "host", **host_info(device), "cpu_native_bf16": cpu_supports_bf16()},
         args.jsonl)
    torch.manual_seed(args.seed)
    block = ResidualAttentionBlock(args.width, args.heads, batch_first=True).to(device).eval()
    for param in block.parameters():
        param.requires_grad_(False)
    x = torch.randn(args.batch, args.tokens, args.width, device=device)
    flops = block_flops(args.width, args.tokens, args.batch)
    measured: dict[torch.dtype, dict] = {}
    for dtype in sorted({_PROBE[v.split("-")[1]] for v in args.variants if v != "reference"} | {torch.float32}, key=str):
        measured[dtype] = matmul_peak(dtype, device, args.matmul_size, args.matmul_seconds)
        emit(measured[dtype], args.jsonl)
    probes = {name: measured[dtype] for name, dtype in _PROBE.items() if dtype in measured}
    variants = [(v, False) for v in args.variants]
    if args.compile:
        variants += [(v, True) for v in args.variants if v.startswith("prepared-")]
    records, reference, base_seconds = [], None, None
    variants.sort(key=lambda item: item[0] != "reference")  # the fp32 block first: the others' ratios need it
    with torch.inference_mode():
        reference = block(x)
        for variant, compiled in variants:
            dtype = "fp32" if variant == "reference" else variant.split("-")[1]
            try:
                out, first, best = time_runner(make_runner(block, variant, device, compiled, args.tokens), x, args.repeats, device)
            except Exception as err:  # noqa: BLE001 - a variant that cannot run is reported, not fatal
                record = {"kind": "block", "variant": variant, "compiled": compiled, "error": f"{type(err).__name__}: {err}"}
                emit(record, args.jsonl)
                records.append(record)
                continue
            if variant == "reference" and not compiled:
                base_seconds = best
            probe = probes[dtype]["peak_gflops"]
            gflops = flops / best / 1e9
            record = {
                "kind": "block", "variant": variant, "compiled": compiled, "batch": args.batch,
                "tokens": args.tokens, "width": args.width, "seconds": best, "first_call_seconds": first,
                "achieved_gflops": gflops, "probe_dtype": str(_PROBE[dtype]).replace("torch.", ""),
                "probe_gflops": probe, "fraction_of_probe": gflops / probe,
                "rel_error": float((out.float() - reference).norm() / reference.norm()),
                "speedup_vs_reference": None if base_seconds is None else base_seconds / best,
            }
            emit(record, args.jsonl)
            records.append(record)
    if args.map_size:
        maps = map_records(args)
        for record in maps:
            emit(record, args.jsonl)
        print()
        print_table(maps, ["order", "batch", "size", "seconds", "speedup_vs_reference_order", "max_abs_diff"])
    print()
    print_table(records, ["variant", "compiled", "seconds", "first_call_seconds", "achieved_gflops",
                          "probe_dtype", "probe_gflops", "fraction_of_probe", "speedup_vs_reference", "rel_error"])
    return records


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
