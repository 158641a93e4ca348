"""The one memory unit of the package's options and figures.

``MB`` in ``--max-mb``, ``--cache-mb``, log lines and the benchmarks' columns is 2^20 bytes (a
mebibyte), the unit in which Linux reports resident memory (``ru_maxrss`` is in KiB).
"""

from __future__ import annotations

__all__ = ["MB", "mb_to_bytes", "in_mb"]

MB = 2**20


def mb_to_bytes(mb: float) -> int:
    """``mb`` MB as a whole number of bytes (rounded down: a budget is never exceeded)."""
    return int(mb * MB)


def in_mb(nbytes: float) -> float:
    """``nbytes`` in MB."""
    return nbytes / MB
