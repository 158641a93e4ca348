"""``run.json``: what produced the outputs (backbone, weights hashes, settings), for reports and audits."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import torch
from torch import nn

from aaclip_med.files import sha256_file
from aaclip_med.identity import network_values
from aaclip_med.packages import installed_version, installed_versions

__all__ = ["sha256_file", "run_record", "adapter_tensors_sha256", "tensor_sha256"]


# the packages whose versions change what inference computes (recorded for the report's provenance)
_PACKAGES = ("aaclip-med", "torch", "open_clip_torch", "monai", "numpy", "highdicom")


def adapter_tensors_sha256(model: nn.Module) -> str | None:
    """sha256 of the adapters' tensors as the network holds them (names, dtypes, shapes, values).

    The adapters file's hash says which file was loaded; this one says what runs, so two untrained
    networks initialised with different seeds (no file at all) are told apart. None for a network
    without adapters of its own (an exported graph: its card records the value it was made with).
    """
    state = getattr(model, "adapter_state_dict", None)
    if state is None:
        return None
    digest = hashlib.sha256()
    for name, tensor in sorted(state().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        tensor_sha256(tensor, digest)
    return digest.hexdigest()


def tensor_sha256(tensor: torch.Tensor, digest=None) -> str:
    """sha256 of a tensor's bytes (CPU, contiguous); with ``digest`` the bytes are added to it instead."""
    digest = digest if digest is not None else hashlib.sha256()
    tensor = tensor.detach().to("cpu").contiguous()
    if tensor.numel():
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


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
        "aaclip_med_version": installed_version("aaclip-med"),
        "package_versions": installed_versions(_PACKAGES),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **settings,
    }
    # an exported graph: the weights and hashes its card recorded when it was made (the files may not be here)
    return record | getattr(model, "recorded_identity", {})
