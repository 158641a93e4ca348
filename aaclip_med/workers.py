"""Setup of DataLoader worker processes shared by training and inference.

Ctrl-C at a terminal sends SIGINT to the whole process group: the main process and every
DataLoader worker. The main process reports the interrupt once (``aaclip_med.cli``) and shuts its
workers down; a worker that also receives it can die mid-item and print its own
``KeyboardInterrupt`` traceback, one per worker. So workers ignore SIGINT and leave the
interrupt to the main process.
"""

from __future__ import annotations

import signal

__all__ = ["ignore_interrupt"]


def ignore_interrupt(worker_id: int) -> None:
    """``worker_init_fn`` of a DataLoader: this worker ignores SIGINT (Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
