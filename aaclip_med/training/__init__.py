"""Two-stage AA-CLIP training (spec sections 6-8) on Ignite engines, single or multi-process.

Names are loaded on first use, so importing ``aaclip_med.training.config`` (the CLI's defaults)
does not import the engines, MONAI and Ignite. Validation: ``aaclip_med.training.validate.validate``.
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

_API = {
    "DistContext": "aaclip_med.distributed",
    "init_distributed": "aaclip_med.distributed",
    "EpochBatches": "aaclip_med.training.batches",
    "SeededSamples": "aaclip_med.training.batches",
    "collate_samples": "aaclip_med.training.batches",
    "StageConfig": "aaclip_med.training.config",
    "TrainConfig": "aaclip_med.training.config",
    "default_stage_config": "aaclip_med.training.config",
    "StageObjective": "aaclip_med.training.engine",
    "StageParts": "aaclip_med.training.engine",
    "build_stage_trainer": "aaclip_med.training.engine",
    "run_stage_engine": "aaclip_med.training.engine",
    "freeze_for_stage": "aaclip_med.training.freeze",
    "stage1_losses": "aaclip_med.training.objectives",
    "stage2_losses": "aaclip_med.training.objectives",
    "load_train_state": "aaclip_med.training.state",
    "save_train_state": "aaclip_med.training.state",
    "FINAL_ADAPTERS": "aaclip_med.training.workflow",
    "STATE_FILE": "aaclip_med.training.workflow",
    "TrainResult": "aaclip_med.training.workflow",
    "run_training": "aaclip_med.training.workflow",
}

__all__ = sorted(_API)


__getattr__ = lazy_exports(__name__, _API)
