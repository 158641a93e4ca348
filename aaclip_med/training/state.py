"""Resumable training state: saved atomically with ``torch.save``, loaded with ``weights_only=True``.

Everything stored is tensors and plain containers, so loading never unpickles code.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aaclip_med.files import atomic_path
from aaclip_med.model import safe_torch_load

__all__ = ["STATE_FORMAT", "StageState", "capture_rng", "cpu_adapters", "restore_rng", "save_train_state", "load_train_state",
           "scheduler_state", "load_scheduler_state"]

logger = logging.getLogger(__name__)

STATE_FORMAT = 1


def capture_rng() -> dict[str, Any]:
    """Torch (CPU and CUDA), NumPy and Python RNG states as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def scheduler_state(scheduler) -> dict[str, Any] | None:
    """A scheduler's state with its ``Counter`` of milestones turned into a plain dict."""
    if scheduler is None:
        return None
    state = dict(scheduler.state_dict())
    if isinstance(state.get("milestones"), Counter):
        state["milestones"] = dict(state["milestones"])
    return state


def load_scheduler_state(scheduler, state: dict[str, Any] | None) -> None:
    if scheduler is None or state is None:
        return
    state = dict(state)
    if isinstance(state.get("milestones"), dict):
        state["milestones"] = Counter(state["milestones"])
    scheduler.load_state_dict(state)


def save_train_state(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` through a temporary file and a rename (never half-written)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({**state, "format": STATE_FORMAT}, tmp)
    return path


def load_train_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by :func:`save_train_state` (``weights_only=True``)."""
    state = safe_torch_load(path)
    if not isinstance(state, dict) or "stage" not in state or state.get("format", 0) > STATE_FORMAT:
        msg = (f"{str(path)!r} is not a training state of this aaclip-med version; "
               "delete it (or pass --no-resume) to start the run afresh.")
        raise ValueError(msg)
    return state


def cpu_adapters(model) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's adapter and head weights (what a state or a best epoch keeps)."""
    return {k: v.detach().cpu().clone() for k, v in model.adapter_state_dict().items()}


class StageState:
    """Everything that resumes one stage exactly, with Ignite's ``state_dict`` / ``load_state_dict``.

    Saved by Ignite's ``Checkpoint`` (see ``handlers/checkpoint.py``) and read back by
    :meth:`load_state_dict` when a run resumes. The adapters are loaded by the workflow before the
    stage's trainer is built (its optimiser and DDP wrapper need the resumed weights).

    Args:
        parts: the stage's ``StageParts`` (optimizer, scheduler, scaler, batches, model).
        epochs: epochs of the stage.
        best: the stage's best-so-far on validation, ``{"metric", "epoch"}`` (shared, updated in place).
        best_states: stage -> adapters of the best epoch (shared, updated in place).
        config: the run's config as a dict (kept with the state for reference).
    """

    def __init__(self, parts: Any, epochs: int, best: dict, best_states: dict, config: dict) -> None:
        self.parts, self.epochs, self.best, self.best_states, self.config = parts, epochs, best, best_states, config
        self.engine: Any = None  # set when the trainer exists

    def state_dict(self, completed: bool = False) -> dict[str, Any]:
        parts, engine = self.parts, self.engine
        return {
            "stage": parts.stage, "iteration": engine.state.iteration, "epoch": engine.state.epoch,
            "epoch_length": len(parts.batches), "max_epochs": self.epochs, "completed": completed,
            "optimizer": parts.optimizer.state_dict(), "scheduler": scheduler_state(parts.scheduler),
            "scaler": parts.scaler.state_dict() if parts.scaler else None,
            "adapters": cpu_adapters(parts.model), "best": dict(self.best),
            "best_adapters": self.best_states.get(parts.stage), "rng": capture_rng(), "config": self.config,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Optimizer, scheduler, scaler, RNG and best-so-far of an interrupted stage."""
        parts = self.parts
        parts.optimizer.load_state_dict(state["optimizer"])
        load_scheduler_state(parts.scheduler, state.get("scheduler"))
        if parts.scaler is not None and state.get("scaler"):
            parts.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"])
        self.best.update(state.get("best") or {})
        if state.get("best_adapters"):
            self.best_states[parts.stage] = state["best_adapters"]
