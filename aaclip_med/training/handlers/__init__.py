"""Ignite handlers of the training engines, one per file (``attach(engine)`` + ``__call__``)."""

from aaclip_med.training.handlers.checkpoint import TrainStateCheckpoint
from aaclip_med.training.handlers.loss_logger import LossLogger
from aaclip_med.training.handlers.progress import attach_progress_bar
from aaclip_med.training.handlers.stop import StopAfterIterations
from aaclip_med.training.handlers.tensorboard import TensorBoardLogger
from aaclip_med.training.handlers.validation import ValidationHandler

__all__ = [
    "LossLogger",
    "StopAfterIterations",
    "TensorBoardLogger",
    "TrainStateCheckpoint",
    "ValidationHandler",
    "attach_progress_bar",
]
