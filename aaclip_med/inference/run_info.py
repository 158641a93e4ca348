"""``run.json``: what produced the outputs (backbone, weights hashes, settings), for reports and audits."""

from __future__ import annotations

from torch import nn

from aaclip_med.files import sha256_file
from aaclip_med.identity import network_values
from aaclip_med.inference.network import is_exported
from aaclip_med.model.digest import adapter_tensors_sha256
from aaclip_med.packages import installed_version, installed_versions
from aaclip_med.timestamps import utc_timestamp

__all__ = ["sha256_file", "run_record"]


# the packages whose versions change what inference computes (recorded for the report's provenance)
_PACKAGES = ("aaclip-med", "torch", "open_clip_torch", "monai", "numpy", "highdicom")




def run_record(model: nn.Module, weights: str | None, settings: dict) -> dict:
    """The run.json content: model identity (names, sha256 of weight files and of the adapters'
    tensors, :mod:`aaclip_med.identity`) plus ``settings``."""
    config = getattr(model, "config", None)
    pretrained = getattr(config, "pretrained", None)
    record = network_values(
        backbone=getattr(config, "backbone", None), image_size=getattr(config, "image_size", None),
        pretrained=pretrained, pretrained_sha256=sha256_file(pretrained), weights=str(weights) if weights else None,
        weights_sha256=sha256_file(weights), adapter_tensors_sha256=adapter_tensors_sha256(model),
    ) | {
        "engine": {"name": "torch", "format": None},
        **({"engine_choice": model.engine_choice} if getattr(model, "engine_choice", None) else {}),
        "aaclip_med_version": installed_version("aaclip-med"),
        "package_versions": installed_versions(_PACKAGES),
        "created": utc_timestamp(),
        **settings,
    }
    # an exported graph: the weights and hashes its card recorded when it was made (the files may not be here)
    return record | (model.recorded_identity if is_exported(model) else {})
