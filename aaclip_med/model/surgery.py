"""Value-value ("surgery") attention used by Stage 1 on the frozen image encoder (spec section 7).

Per head: ``q = k = v`` (the block's own value projection, bias included), then
``softmax(v v^T / sqrt(head_dim)) v``, heads concatenated, then the block's out-projection.
Attention runs over the token axis of batch-first (B, L, D) tensors; the public code attends over
the batch axis by mistake, which we do not reproduce.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["value_value_attention", "surgery_block_forward"]


def value_value_attention(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Value-value self-attention with the weights of ``attn``.

    Args:
        attn: an ``nn.MultiheadAttention`` or open_clip ``Attention`` (packed ``in_proj_weight``).
        x: normalised block input (B, L, D).

    Returns:
        (B, L, D) after the out-projection.
    """
    b, length, dim = x.shape
    heads = attn.num_heads
    w_v = attn.in_proj_weight[2 * dim :]
    b_v = attn.in_proj_bias[2 * dim :] if attn.in_proj_bias is not None else None
    v = F.linear(x, w_v, b_v)
    v = v.view(b, length, heads, dim // heads).transpose(1, 2)  # (B, heads, L, head_dim)
    out = F.scaled_dot_product_attention(v, v, v)  # default scale is head_dim ** -0.5
    out = out.transpose(1, 2).reshape(b, length, dim)  # (B, L, D)
    return attn.out_proj(out)


def surgery_block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One open_clip residual block with its self-attention replaced by value-value attention.

    Residual connections, layer scales and the MLP are those of the block.
    """
    x = x + block.ls_1(value_value_attention(block.attn, block.ln_1(x)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))
