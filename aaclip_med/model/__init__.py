"""The AA-CLIP network (pure modules) and its weights."""

from aaclip_med.model.aaclip import AAClip, ImageFeatures, Prediction, build_aaclip
from aaclip_med.model.adapters import ResidualAdapter, mix_adapter
from aaclip_med.model.backbone import (
    BackboneWeightsError,
    build_clip,
    get_backbone_preset,
    list_backbone_presets,
    resolve_config,
)
from aaclip_med.model.checkpoint import (
    CheckpointError,
    convert_public_checkpoints,
    load_adapters,
    load_public_checkpoints,
    read_adapter_file,
    safe_torch_load,
    save_adapters,
)
from aaclip_med.model.config import AAClipConfig
from aaclip_med.model.heads import ProjectionHead

__all__ = [
    "AAClip",
    "AAClipConfig",
    "BackboneWeightsError",
    "CheckpointError",
    "convert_public_checkpoints",
    "load_adapters",
    "load_public_checkpoints",
    "read_adapter_file",
    "safe_torch_load",
    "save_adapters",
    "ImageFeatures",
    "Prediction",
    "ProjectionHead",
    "ResidualAdapter",
    "build_aaclip",
    "build_clip",
    "get_backbone_preset",
    "list_backbone_presets",
    "mix_adapter",
    "resolve_config",
]
