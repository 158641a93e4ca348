"""Setup of DataLoader worker processes shared by training and inference.

Ctrl-C at a terminal sends SIGINT to the whole process group: the main process and every
DataLoader worker. The main process reports the interrupt once (``aaclip_med.cli``) and shuts its
workers down; a worker that also receives it can die mid-item and print its own
``KeyboardInterrupt`` traceback, one per worker. So workers ignore SIGINT and leave the
interrupt to the main process.

A worker can also be cut off while it hands a tensor to the main process (PyTorch passes the
storage's file descriptor over a socket served by a thread of the worker); that thread then
reports the broken connection through ``sys.excepthook``. In a worker such an error only means
that the main process stopped reading, so it is not printed. Errors of the data code itself do
not go through the hook: the DataLoader sends them to the main process, which raises them.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

__all__ = ["ignore_interrupt", "quiet_peer_errors"]

# what a worker sees when the main process has stopped reading from it
_PEER_GONE = (BrokenPipeError, ConnectionResetError, EOFError)


def quiet_peer_errors(previous: Callable) -> Callable:
    """An excepthook that drops the errors of a vanished peer and passes the others to ``previous``."""

    def hook(kind, value, traceback) -> None:
        if not issubclass(kind, _PEER_GONE):
            previous(kind, value, traceback)

    return hook


def ignore_interrupt(worker_id: int) -> None:
    """``worker_init_fn`` of a DataLoader: this worker ignores SIGINT (Ctrl-C) and does not print
    the broken connections of a main process that stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.excepthook = quiet_peer_errors(sys.excepthook)
