"""sha256 of tensors: what a network's adapters hold, and what a stored feature tensor holds.

A file's hash says which file was loaded (:func:`aaclip_med.files.sha256_file`); these say what
runs or what was read back, so two untrained networks of different seeds are told apart and a
damaged feature tensor is noticed.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

__all__ = ["adapter_tensors_sha256", "tensor_sha256"]


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
