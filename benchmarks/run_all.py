"""Run the benchmark suite: a reduced CPU set (default, under 10 minutes) or the full set (``--full``).

Each script runs in its own process (so its peak memory and thread pool are its own) with a time
limit; its JSON lines pass through unchanged, and ``--out`` collects them in one file. Scripts
written by other parts of the project (``train_step.py``, ``metrics.py``) run when present.

Reduced set: forward pass of the paper's ViT-L-14-336 at 518 px, batch 1, fast path fp32 vs bf16;
data loading at 256 x 256 x 16; metrics on 200 maps; one Stage-1 step of ViT-B-16 at batch 2.
Full set: forward with batch 1 and 4 and the fp32 reference path, data at 512 x 512 x 64, the
other scripts at their defaults.
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
        ["--batch-sizes", "1", "--paths", "fast-fp32", "fast-bf16", "--matmul-seconds", "2"],
        ["--batch-sizes", "1", "4", "--paths", "reference", "fast-fp32", "fast-bf16"],
        (300, 3600),
    ),
    "data_loading.py": (
        ["--side", "256", "--slices", "16", "--cases", "4", "--workers", "0", "2"],
        ["--side", "512", "--slices", "64", "--cases", "4", "--workers", "0", "2"],
        (120, 1200),
    ),
    "train_step.py": (["--backbone", "ViT-B-16", "--only", "stage1", "--batch", "2"], [], (240, 7200)),
    "metrics.py": (["--n", "200"], [], (60, 3600)),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full set (tens of minutes on a CPU)")
    parser.add_argument("--only", nargs="+", default=None, help="script names to run (default: all present)")
    parser.add_argument("--out", type=Path, default=None, help="collect every JSON line into this file")
    return parser.parse_args(argv)


def run_script(name: str, args: list[str], limit_s: int, out: Path | None) -> dict:
    """Run one script, echo its output, keep its JSON lines; returns a status record."""
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
    if out is not None:
        with open(out, "a") as handle:
            for line in lines:
                handle.write(json.dumps({"script": name, **json.loads(line)}) + "\n")
    return {"script": name, "rc": rc, "seconds": round(time.perf_counter() - start, 1), "json_lines": len(lines)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    statuses = []
    for name, (reduced, full, limits) in SUITE.items():
        if args.only and name not in args.only:
            continue
        if not (HERE / name).is_file():
            print(f"\n=== {name}: not present, skipped", flush=True)
            continue
        chosen, limit = (full, limits[1]) if args.full else (reduced, limits[0])
        statuses.append(run_script(name, chosen, limit, args.out))
    print("\nsuite summary")
    for status in statuses:
        print(json.dumps(status))
    return 0 if all(s["rc"] == 0 for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
