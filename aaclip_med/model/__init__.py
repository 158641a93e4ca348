"""The AA-CLIP network (pure modules) and its weights.

Names are loaded on first use, so ``aaclip_med.model.config`` and
``aaclip_med.model.adapter_file`` (read by the CLI to check its arguments) do not import torch.
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

_API = {
    "AAClip": "aaclip_med.model.aaclip",
    "ImageFeatures": "aaclip_med.model.aaclip",
    "Prediction": "aaclip_med.model.aaclip",
    "build_aaclip": "aaclip_med.model.aaclip",
    "ResidualAdapter": "aaclip_med.model.adapters",
    "mix_adapter": "aaclip_med.model.adapters",
    "BackboneWeightsError": "aaclip_med.model.backbone",
    "build_clip": "aaclip_med.model.backbone",
    "get_backbone_preset": "aaclip_med.model.backbone",
    "list_backbone_presets": "aaclip_med.model.backbone",
    "resolve_config": "aaclip_med.model.backbone",
    "CheckpointError": "aaclip_med.model.adapter_file",
    "read_adapter_metadata": "aaclip_med.model.adapter_file",
    "convert_public_checkpoints": "aaclip_med.model.checkpoint",
    "load_adapters": "aaclip_med.model.checkpoint",
    "load_public_checkpoints": "aaclip_med.model.checkpoint",
    "read_adapter_file": "aaclip_med.model.checkpoint",
    "safe_torch_load": "aaclip_med.model.checkpoint",
    "save_adapters": "aaclip_med.model.checkpoint",
    "AAClipConfig": "aaclip_med.model.config",
    "check_image_size": "aaclip_med.model.config",
    "patch_size": "aaclip_med.model.config",
    "ProjectionHead": "aaclip_med.model.heads",
}

__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
