"""Helpers shared by the benchmark scripts: JSON lines, tables, peak memory, matmul peak, host facts.

Benchmarks print (that is their job): one JSON object per measurement, then a short table.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from aaclip_med.precision import cpu_flags as host_cpu_flags
from aaclip_med.units import in_mb

# The benchmarks build their inputs with the tests' synthetic sources (tests/_synthetic.py): make the
# repository root importable when a script runs as `python benchmarks/NAME.py`.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def emit(record: dict[str, Any], jsonl: Path | None = None) -> None:
    """Print one measurement as a JSON line (and append it to ``jsonl`` when given)."""
    line = json.dumps(record, sort_keys=False)
    print(line, flush=True)
    if jsonl is not None:
        with open(jsonl, "a") as handle:
            handle.write(line + "\n")


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A fixed-width text table of ``columns`` from ``rows`` (missing cells empty)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    cells = [[cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) if cells else len(col) for i, col in enumerate(columns)]
    print("  ".join(col.ljust(w) for col, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(value.ljust(w) for value, w in zip(row, widths)))


# CPU flags that decide the matmul rates (vector width, int8 dot products, bf16, matrix units).
_FLAGS_OF_INTEREST = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8", "asimd", "bf16", "i8mm", "sve",
)


def cpu_flags() -> list[str]:
    """The CPU flags of interest present on this host (``/proc/cpuinfo``; empty where unreadable)."""
    present = host_cpu_flags()
    return [flag for flag in _FLAGS_OF_INTEREST if flag in present]


def host_info(device: torch.device) -> dict[str, Any]:
    """What the figures depend on: CPU model and flags of interest, threads, load, GPU name."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and "cpu_model" not in info:
                info["cpu_model"] = value.strip()
    except OSError:
        pass
    info["cpu_bf16_flags"] = sorted(f for f in host_cpu_flags() if "bf16" in f or f.startswith("amx"))
    info["cpu_flags"] = cpu_flags()
    info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE
    except OSError:
        return 0


class PeakMemory:
    """Peak memory of the enclosed code: CUDA allocator peak, or sampled resident set on CPU.

    On CPU a thread samples ``/proc/self/statm`` every few milliseconds (``ru_maxrss`` cannot be
    reset between measurements). ``peak_mb`` is the process peak while inside; ``delta_mb`` what
    the code added on top of the memory held when it started (activations, workspaces).
    """

    def __init__(self, device: torch.device, interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.delta_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
        self.peak_mb = in_mb(self._peak)
        self.delta_mb = in_mb(self._peak - self._start)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, size: int, seconds: float) -> dict[str, Any]:
    """Measured peak of a square matmul in ``dtype``: best GFLOP/s over repeated products.

    The product is ``a @ b.T`` with ``b`` stored row-major: the layout of every linear layer
    (``F.linear``). Where the CPU has native units both layouts run alike; without them, PyTorch's
    emulated bf16 GEMM is ~10x slower on the plain ``a @ b`` layout than on this one, and the
    model's linears see this one.

    The best repetition (not the mean) is the peak the machine can reach; on a shared host the
    mean mostly measures the neighbours.
    """
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype).t()  # a transposed view, as F.linear reads it
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up: kernel selection, oneDNN primitive creation
    synchronize(device)
    flops = 2.0 * size**3
    per_rep = 10 if device.type == "cuda" else 1  # GPU products are short: time a few per sync
    best, wall, reps = float("inf"), 0.0, 0
    while wall < seconds or reps < 3:
        start = time.perf_counter()
        for _ in range(per_rep):
            torch.mm(a, b, out=out)
        synchronize(device)
        elapsed = time.perf_counter() - start
        best, wall, reps = min(best, elapsed / per_rep), wall + elapsed, reps + 1
    return {
        "kind": "matmul_peak",
        "dtype": str(dtype).replace("torch.", ""),
        "size": size,
        "layout": "a @ b.T (linear)",
        "reps": reps * per_rep,
        "peak_gflops": flops / best / 1e9,
        "mean_gflops": flops * reps * per_rep / wall / 1e9,
    }
