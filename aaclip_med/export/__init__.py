"""Exported graphs: TorchScript, ONNX and OpenVINO files of one AA-CLIP class, int8, their model card,
and :class:`DeployedModel`, which runs them in place of the torch network.

See docs/export.md. The formats and engines are data (:mod:`aaclip_med.export.registry`, standard
library only); the other names are imported on first use, so the CLI reads the registry without torch.
"""

from aaclip_med._lazy import lazy_exports

_MODULES = {
    "aaclip_med.export.card": ["CARD_NAME", "read_card", "check_files", "card_mismatches"],
    "aaclip_med.export.deployed": ["DeployedModel"],
    "aaclip_med.export.exporter": ["export_model", "reference_images"],
    "aaclip_med.export.folder": ["check_export_folder"],
    "aaclip_med.export.registry": ["EXPORT_PRECISIONS", "FORMATS", "ENGINES", "export_format", "engine", "check_export"],
}

__all__ = [name for names in _MODULES.values() for name in names]
__getattr__ = lazy_exports(__name__, _MODULES)
