"""Linear projection heads of spec section 3 (text projection, per-level seg heads, det head)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """``Linear(in, out, bias=False)``, optionally followed by LeakyReLU.

    Module names follow the public checkpoints: ``fc.weight`` without activation, ``fc.0.weight``
    with it.

    Args:
        in_dim: input width.
        out_dim: output width (the CLIP joint embedding size).
        activation: append a LeakyReLU.
        negative_slope: its slope.
    """

    def __init__(self, in_dim: int, out_dim: int, activation: bool = False, negative_slope: float = 0.01):
        super().__init__()
        linear = nn.Linear(in_dim, out_dim, bias=False)
        self.fc = nn.Sequential(linear, nn.LeakyReLU(negative_slope)) if activation else linear
        self.reset_parameters()

    @property
    def linear(self) -> nn.Linear:
        return self.fc[0] if isinstance(self.fc, nn.Sequential) else self.fc

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.linear.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        return self.fc(x)
