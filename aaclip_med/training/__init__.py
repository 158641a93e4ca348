"""Two-stage AA-CLIP training (spec sections 6-8) on Ignite engines, single or multi-process.

Names are loaded on first use, so importing ``aaclip_med.training.config`` (the CLI's defaults)
does not import the engines, MONAI and Ignite. Validation: ``aaclip_med.training.validate.validate``.
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

_MODULES = {
    "aaclip_med.distributed": ("DistContext", "init_distributed"),
    "aaclip_med.training.batches": ("EpochBatches", "SeededSamples", "collate_samples"),
    "aaclip_med.training.config": (
        "StageConfig", "SyntheticConfig", "TrainConfig", "default_stage_config", "synthetic_settings",
    ),
    "aaclip_med.training.engine": ("StageObjective", "StageParts", "build_stage_trainer", "run_stage_engine"),
    "aaclip_med.training.freeze": ("freeze_for_stage",),
    "aaclip_med.training.objectives": ("stage1_losses", "stage2_losses"),
    "aaclip_med.training.state": ("load_train_state", "save_train_state"),
    "aaclip_med.training.workflow": ("FINAL_ADAPTERS", "STATE_FILE", "TrainResult", "run_training"),
}

__all__ = sorted(name for names in _MODULES.values() for name in names)

__getattr__ = lazy_exports(__name__, _MODULES)
