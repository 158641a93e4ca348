"""Residual adapter of spec section 2: ``Linear(d, d, bias=False)`` + LeakyReLU, no bottleneck."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResidualAdapter", "mix_adapter"]


class ResidualAdapter(nn.Module):
    """Token-wise adapter inserted after a transformer block.

    The submodule is named ``fc`` (``fc.0`` the linear layer) so that the authors' public
    checkpoints (``layer_adapters.i.fc.0.weight``) map onto it key for key.

    Args:
        dim: token width of the encoder (vision or text width of the backbone).
        negative_slope: slope of the LeakyReLU.
    """

    def __init__(self, dim: int, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.LeakyReLU(negative_slope))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.fc[0].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D)."""
        return self.fc(x)


def mix_adapter(x: torch.Tensor, adapter: nn.Module, lam: float) -> torch.Tensor:
    """``lam * a' + (1 - lam) * x`` with ``a'`` the adapter output rescaled to the norm of ``x``.

    The rescaling (per token, L2 over channels) keeps the adapted tokens on the scale the following
    frozen blocks expect, whatever the adapter's weights are.

    Args:
        x: block output tokens (B, L, D), class/EOT tokens included.
        adapter: the adapter of this block.
        lam: residual ratio lambda (0.1 in the paper).
    """
    a = adapter(x)
    # Tiny epsilon: an all-zero adapter output (LeakyReLU of a zero row) must not divide by zero.
    scale = x.norm(dim=-1, keepdim=True) / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return lam * (a * scale) + (1.0 - lam) * x
