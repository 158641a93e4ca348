"""Run the benchmark suite: a reduced CPU set (default, under 10 minutes) or the full set (``--full``).

Each script runs in its own process (so its peak memory and thread pool are its own) with a time
limit; its JSON lines pass through unchanged, and ``--out`` collects them in one file. Scripts
written by other parts of the project (``train_step.py``, ``metrics.py``) run when present. At the
end a summary prints the figures the speed work is judged by: the CPU flags, each fast path's
fraction of the same run's matmul peak, the reduced-precision speed ratios and accuracy (Pearson r
of the maps, Spearman of the scores against fp32), one ViT-L block per variant, and the volume
reads of a cohort epoch with and without the cache.

Reduced set: forward pass of the paper's ViT-L-14-336 at 518 px, batch 1, fast path fp32, bf16
(skipped where the CPU only emulates bf16) and int8; one ViT-L block in the main variants; data
loading at 256 x 256 x 16 (DICOM); metrics on 200 maps; one Stage-1 step of ViT-B-16 at batch 2.
Full set: forward with batch 1 and 4 and the fp32 reference path, every block variant (compiled
too), data at 512 x 512 x 64, the other scripts at their defaults.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# script -> (reduced arguments, full arguments, time limit in seconds for reduced / full)
SUITE: dict[str, tuple[list[str], list[str], tuple[int, int]]] = {
    "forward.py": (
        ["--batch-sizes", "1", "--paths", "fast-fp32", "fast-bf16", "fast-int8", "--matmul-seconds", "2"],
        ["--batch-sizes", "1", "4", "--paths", "reference", "fast-fp32", "fast-bf16", "fast-int8"],
        (420, 3600),
    ),
    "block.py": (
        ["--variants", "reference", "autocast-bf16", "prepared-fp32-sdpa", "prepared-bf16-sdpa", "prepared-int8-sdpa",
         "--repeats", "2"],
        ["--compile"],
        (300, 3600),
    ),
    "data_loading.py": (
        ["--side", "256", "--slices", "16", "--cases", "4", "--workers", "0", "2", "--formats", "dicom",
         "--main-threads", "0"],
        ["--side", "512", "--slices", "64", "--cases", "4", "--workers", "0", "2"],
        (240, 1800),
    ),
    "train_step.py": (["--backbone", "ViT-B-16", "--only", "stage1", "--batch", "2"], [], (240, 7200)),
    "metrics.py": (["--n", "200"], [], (180, 3600)),
    "report_time.py": (["--series", "4", "--slices", "16"], [], (180, 1800)),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full set (tens of minutes on a CPU)")
    parser.add_argument("--only", nargs="+", default=None, help="script names to run (default: all present)")
    parser.add_argument("--out", type=Path, default=None, help="collect every JSON line into this file")
    return parser.parse_args(argv)


def run_script(name: str, args: list[str], limit_s: int, out: Path | None, collected: list[dict]) -> dict:
    """Run one script, echo its output, keep its JSON lines (also in ``collected``); returns a status record."""
    command = [sys.executable, str(HERE / name), *args]
    print(f"\n=== {name} {' '.join(args)} (limit {limit_s} s)", flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=limit_s, cwd=HERE.parent)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as err:
        rc, stdout, stderr = "timeout", err.stdout or "", err.stderr or ""
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
    print(stdout, end="", flush=True)
    if rc != 0:
        print(stderr[-4000:], file=sys.stderr)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    for line in lines:
        try:
            collected.append({"script": name, **json.loads(line)})
        except json.JSONDecodeError:
            pass
    if out is not None:
        with open(out, "a") as handle:
            for line in lines:
                handle.write(json.dumps({"script": name, **json.loads(line)}) + "\n")
    return {"script": name, "rc": rc, "seconds": round(time.perf_counter() - start, 1), "json_lines": len(lines)}


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if isinstance(value, float) else "-" if value is None else str(value)


def speed_summary(records: list[dict]) -> list[str]:
    """The speed figures of the run, one line each (ratios and fractions, never bare seconds)."""
    lines = []
    host = next((r for r in records if r.get("kind") == "host"), None)
    if host is not None:
        lines.append(f"cpu: {host.get('cpu_model')} | flags {' '.join(host.get('cpu_flags', [])) or '-'} | "
                     f"native bf16 {host.get('cpu_native_bf16')} | threads {host.get('threads')} | "
                     f"load {host.get('load_avg_1m')}")
    for r in records:
        kind, script = r.get("kind"), r.get("script")
        if script == "forward.py" and kind == "forward" and r.get("final"):
            lines.append(f"forward {r['path']} batch {r['batch']}: {_fmt(r['achieved_gflops'])} GFLOP/s = "
                         f"{_fmt(r['fraction_of_peak'])} of the run's {r['dtype']} matmul peak "
                         f"({_fmt(r.get('fraction_of_local_peak'))} of the peak just before)")
        elif script == "forward.py" and kind == "speedup":
            lines.append(f"speed ratio {r['path']} / {r['vs']} batch {r['batch']}: {_fmt(r['speedup'])}x")
        elif script == "forward.py" and kind == "accuracy":
            lines.append(f"accuracy {r['path']} vs {r['vs']} ({r['images']} images): map Pearson "
                         f"{_fmt(r['map_pearson_pooled'], 6)} (min per image {_fmt(r['map_pearson_min_per_image'], 6)}), "
                         f"score Spearman {_fmt(r['score_spearman'], 6)}")
        elif script == "forward.py" and kind == "skipped":
            lines.append(f"skipped {r['path']}: {r['reason']}")
        elif script == "block.py" and kind == "block" and "seconds" in r:
            lines.append(f"block {r['variant']}{' compiled' if r['compiled'] else ''}: "
                         f"{_fmt(r['fraction_of_probe'])} of the {r['probe_dtype']} matmul probe, "
                         f"{_fmt(r.get('speedup_vs_reference'))}x the fp32 block, rel. error {_fmt(r['rel_error'])}")
        elif script == "block.py" and kind == "maps":
            lines.append(f"maps {r['order']} batch {r['batch']} at {r['size']} px: "
                         f"{_fmt(r['speedup_vs_reference_order'])}x the reference order, max diff {_fmt(r['max_abs_diff'])}")
        elif script == "data_loading.py" and r.get("stage") == "cohort":
            lines.append(f"cohort epoch {r['format']} workers {r['workers']} {r['order']} cache {r['cache']}: "
                         f"{r['reads']} volume reads for {r['slices']} slices, {_fmt(r['slices_per_s'])} slices/s")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    statuses, collected = [], []
    for name, (reduced, full, limits) in SUITE.items():
        if args.only and name not in args.only:
            continue
        if not (HERE / name).is_file():
            print(f"\n=== {name}: not present, skipped", flush=True)
            continue
        chosen, limit = (full, limits[1]) if args.full else (reduced, limits[0])
        statuses.append(run_script(name, chosen, limit, args.out, collected))
    print("\nspeed figures")
    for line in speed_summary(collected):
        print(line)
    print("\nsuite summary")
    for status in statuses:
        print(json.dumps(status))
    return 0 if all(s["rc"] == 0 for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
