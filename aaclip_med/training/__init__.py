"""Two-stage AA-CLIP training (spec sections 6-8) on Ignite engines, single or multi-process."""

from aaclip_med.distributed import DistContext, init_distributed
from aaclip_med.training.batches import EpochBatches, SeededSamples, collate_samples
from aaclip_med.training.config import StageConfig, TrainConfig, default_stage_config
from aaclip_med.training.engine import StageParts, build_stage_trainer, run_stage_engine
from aaclip_med.training.freeze import freeze_for_stage
from aaclip_med.training.objectives import stage1_losses, stage2_losses
from aaclip_med.training.state import load_train_state, save_train_state
from aaclip_med.training.validate import validate
from aaclip_med.training.workflow import FINAL_ADAPTERS, STATE_FILE, TrainResult, run_training

__all__ = [
    "DistContext",
    "EpochBatches",
    "FINAL_ADAPTERS",
    "STATE_FILE",
    "SeededSamples",
    "StageConfig",
    "StageParts",
    "TrainConfig",
    "TrainResult",
    "build_stage_trainer",
    "collate_samples",
    "default_stage_config",
    "freeze_for_stage",
    "init_distributed",
    "load_train_state",
    "run_stage_engine",
    "run_training",
    "save_train_state",
    "stage1_losses",
    "stage2_losses",
    "validate",
]
