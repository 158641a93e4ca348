"""A bounded cache of decoded volumes, so a CT of 300 slice records is read once, not 300 times.

A cohort manifest has one record per slice; without a cache each record decodes its whole series
(hundreds of DICOM files) to keep one slice. :class:`VolumeCache` keeps decoded volumes in a
least-recently-used order under a byte budget.

DataLoader workers: the cache lives in the process that loads. Each worker holds its own cache
(a fork copies the parent's entries copy-on-write; a spawned worker receives the cache pickled
without its entries), so nothing is shared between processes and no lock crosses them; memory is
at most ``budget x (workers + 1)``. Within a process a lock keeps the bookkeeping consistent when
threads share it. Entries are keyed by the resolved path and the file's (or, for a DICOM series
folder, its files') size and modification time, so a file replaced on disk is read again.

Callers get the cached tensor itself and must not modify it in place (``LoadSampled`` only cuts
slices from it, and slicing copies).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from aaclip_med.units import in_mb

__all__ = ["DEFAULT_CACHE_BYTES", "VolumeCache"]

logger = logging.getLogger(__name__)

# 1 GiB per loading process: three 512 x 512 x 300 float32 CTs.
DEFAULT_CACHE_BYTES = 2**30


def _file_key(path: Path) -> tuple:
    """What identifies the current content of a file or DICOM series folder (cheap: stat only)."""
    if path.is_dir():
        stats = [entry.stat() for entry in path.iterdir() if entry.is_file()]
        return (str(path.resolve()), len(stats), max((s.st_mtime_ns for s in stats), default=0),
                sum(s.st_size for s in stats))
    stat = path.stat()
    return (str(path.resolve()), 1, stat.st_mtime_ns, stat.st_size)


def _nbytes(volume: torch.Tensor) -> int:
    return volume.element_size() * volume.numel()


class VolumeCache:
    """LRU cache of decoded volumes (C, X, Y, Z) under a byte budget.

    Args:
        max_bytes: budget of this process's cache; 0 disables it. A volume larger than the
            budget is returned without being kept.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0 (0 disables the cache), got {max_bytes}.")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = self.peak_bytes = 0
        self.hits = self.misses = self.evictions = 0
        self._too_large: set[tuple] = set()  # keys already reported as over the budget

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self) -> dict:
        # A cache sent to a spawned DataLoader worker starts empty: entries are per process.
        state = self.__dict__.copy()
        state.update(_entries=OrderedDict(), _lock=None, bytes=0, peak_bytes=0, hits=0, misses=0, evictions=0,
                     _too_large=set())
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def get(self, path: str | Path, load: Callable[[Path], torch.Tensor]) -> torch.Tensor:
        """The decoded volume of ``path``: from the cache, or ``load(path)`` (then kept if it fits).

        Only 4D tensors (C, X, Y, Z) are kept; 2D images pass through uncached.
        """
        path = Path(path)
        if self.max_bytes == 0:
            return load(path)
        key = _file_key(path)
        with self._lock:
            volume = self._entries.get(key)
            if volume is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return volume
            self.misses += 1
        volume = load(path)
        if volume.ndim == 4:
            self._put(key, volume)
        return volume

    def _put(self, key: tuple, volume: torch.Tensor) -> None:
        size = _nbytes(volume)
        if size > self.max_bytes:
            if key not in self._too_large:  # once per volume: it is decoded again at each use
                self._too_large.add(key)
                logger.warning("%s: its decoded volume (%.0f MB) exceeds the volume cache budget (%.0f MB), so it is "
                               "decoded again at each use; raise the budget to keep it", key[0], in_mb(size),
                               in_mb(self.max_bytes))
            return
        with self._lock:
            if key in self._entries:
                return
            while self.bytes + size > self.max_bytes and self._entries:
                _, old = self._entries.popitem(last=False)
                self.bytes -= _nbytes(old)
                self.evictions += 1
            self._entries[key] = volume
            self.bytes += size
            self.peak_bytes = max(self.peak_bytes, self.bytes)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def stats(self) -> dict[str, int]:
        """Hits, misses (= reads), evictions, entries, bytes held and their peak, for logs and benchmarks."""
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions,
                "entries": len(self._entries), "bytes": self.bytes, "peak_bytes": self.peak_bytes}
