"""DataLoader workers leave Ctrl-C to the main process: one message, no worker tracebacks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

from aaclip_med.inference.prefetch import prefetch
from aaclip_med.training.batches import EpochBatches, SeededSamples
from aaclip_med.workers import quiet_peer_errors
from tests.training._synthetic import make_samples

ROOT = Path(__file__).resolve().parents[1]


class _MarkSigint:
    """A 'transform' run in the worker: the image becomes 1 where the worker ignores SIGINT, else 0."""

    def __call__(self, item):
        ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        return {**item, "image": torch.full_like(item["image"], float(ignored))}


def _sigint_ignored(item) -> tuple[bool, int]:
    quiet = getattr(sys.excepthook, "__qualname__", "") == "quiet_peer_errors.<locals>.hook"
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN and quiet, os.getpid()


def test_worker_excepthook_drops_only_the_errors_of_a_vanished_main_process():
    seen = []
    hook = quiet_peer_errors(lambda kind, value, tb: seen.append(kind))
    for kind in (ConnectionResetError, BrokenPipeError, EOFError, ValueError, KeyError):
        hook(kind, kind("x"), None)
    assert seen == [ValueError, KeyError]


def test_training_and_inference_workers_ignore_sigint_and_the_main_process_does_not():
    # as at a terminal: a shell without job control starts background jobs (pytest too) with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        batches = EpochBatches(SeededSamples(make_samples(4, size=28), _MarkSigint(), 0), 2, 0, num_workers=2)
        batches.start_epoch(0)
        assert [float(batches.next()["image"].min()) for _ in range(2)] == [1.0, 1.0]
        loaded = [result for _, result, _ in prefetch([0, 1, 2], _sigint_ignored, workers=1)]
        assert all(ignored for ignored, _ in loaded) and {pid for _, pid in loaded} != {os.getpid()}
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C still reaches the main process
    finally:
        signal.signal(signal.SIGINT, previous)


# torch and aaclip_med.workers only: the child starts in seconds (aaclip_med.training imports MONAI)
_CHILD = textwrap.dedent('''
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal, even if pytest runs in the background
    import torch
    from torch.utils.data import DataLoader, Dataset
    from aaclip_med.workers import ignore_interrupt

    class Slow(Dataset):
        def __len__(self):
            return 10_000

        def __getitem__(self, index):
            time.sleep(0.05)
            return torch.zeros(2)

    try:
        for n, _ in enumerate(DataLoader(Slow(), batch_size=2, num_workers=2, worker_init_fn=ignore_interrupt)):
            if n == 0:
                print("ready", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
''')


def test_ctrl_c_with_workers_prints_only_the_main_process_message():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", _CHILD], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # the workers are busy in items
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C at a terminal does: the whole process group
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
