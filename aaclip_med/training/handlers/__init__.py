"""Handlers of the training engines that no MONAI or Ignite handler provides, one per file.

Library handlers are used where they do the job: Ignite's ``Checkpoint`` (resumable state, with an
atomic save handler), MONAI's ``TensorBoardStatsHandler`` and Ignite's ``ProgressBar``. What
remains is specific to this training: the per-iteration JSON-lines log, the per-stage validation
and best-epoch selection, and the resumable stop after N iterations.
"""

from aaclip_med.training.handlers.best_epoch import BestEpochSelector
from aaclip_med.training.handlers.checkpoint import AtomicStateSaver, attach_state_checkpoint
from aaclip_med.training.handlers.loss_logger import LossLogger
from aaclip_med.training.handlers.stop import StopAfterIterations

__all__ = [
    "AtomicStateSaver",
    "BestEpochSelector",
    "LossLogger",
    "StopAfterIterations",
    "attach_state_checkpoint",
]
