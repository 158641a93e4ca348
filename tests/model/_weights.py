"""Helpers that write CLIP weights in the formats users bring (no downloads)."""

import torch
from torch import nn


class _Holder(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_torchscript_archive(state: dict, path) -> None:
    """Write ``state`` as a TorchScript archive, the format of OpenAI's released ``.pt`` files."""
    root = _Holder()
    for key, value in state.items():
        *parts, leaf = key.split(".")
        module = root
        for part in parts:
            if not hasattr(module, part):
                module.add_module(part, _Holder())
            module = getattr(module, part)
        module.register_buffer(leaf, value.clone())
    torch.jit.script(root).save(str(path))


class CodeRunningPayload:
    """Unpickling this calls ``os.system``: weights_only loading must refuse it."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))
