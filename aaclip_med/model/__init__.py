"""The AA-CLIP network (pure modules) and its weights.

Names are loaded on first use, so ``aaclip_med.model.config`` and
``aaclip_med.model.adapter_file`` (read by the CLI to check its arguments) do not import torch.
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

_MODULES = {
    "aaclip_med.model.aaclip": ("AAClip", "ImageFeatures", "Prediction", "build_aaclip"),
    "aaclip_med.model.adapters": ("ResidualAdapter", "mix_adapter"),
    "aaclip_med.model.backbone": ("BackboneWeightsError", "build_clip", "get_backbone_preset", "list_backbone_presets", "resolve_config"),
    "aaclip_med.model.adapter_file": ("CheckpointError", "read_adapter_metadata"),
    "aaclip_med.model.checkpoint": ("convert_public_checkpoints", "load_adapters", "load_public_checkpoints", "read_adapter_file", "safe_torch_load", "save_adapters"),
    "aaclip_med.model.config": ("AAClipConfig", "check_image_size", "patch_size"),
    "aaclip_med.model.heads": ("ProjectionHead",),
}

__all__ = sorted(name for names in _MODULES.values() for name in names)

__getattr__ = lazy_exports(__name__, _MODULES)
