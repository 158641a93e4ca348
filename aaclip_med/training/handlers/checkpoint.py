"""The resumable training state, saved by Ignite's ``Checkpoint`` every N iterations and at each epoch end."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from ignite.handlers.checkpoint import BaseSaveHandler

from aaclip_med.training.state import save_train_state

__all__ = ["AtomicStateSaver", "attach_state_checkpoint"]

logger = logging.getLogger(__name__)


class AtomicStateSaver(BaseSaveHandler):
    """Ignite save handler writing ``torch.save`` files through the project's atomic writer.

    Ignite's own ``DiskSaver(atomic=True)`` writes through ``tempfile.NamedTemporaryFile``: the
    file gets mode 0600 and a temporary name that a resumed run does not recognise as its own. This
    one uses :func:`aaclip_med.training.state.save_train_state` (umask permissions, ``.tmp-`` names).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        save_train_state(dict(checkpoint), self.folder / filename)
        logger.debug("Saved training state (iteration %s) to %s", checkpoint.get("iteration"), self.folder / filename)

    def remove(self, filename: str) -> None:
        """Nothing to do: there is one state file, and the next save replaces it atomically."""


def attach_state_checkpoint(engine: Engine, state: Any, path: str | Path, every: int) -> Checkpoint:
    """Save ``state.state_dict()`` to ``path`` every ``every`` iterations and at each epoch end.

    Attach it after the handlers whose results belong in the state (validation at epoch end may
    find a new best), so the epoch-end save rewrites the iteration's state with them.
    """
    path = Path(path)
    checkpoint = Checkpoint(
        {"train_state": state}, AtomicStateSaver(path.parent), filename_pattern=path.name,
        n_saved=1, greater_or_equal=True,  # the epoch-end save of an iteration already saved replaces it
    )
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=every) | Events.EPOCH_COMPLETED, checkpoint)
    return checkpoint
