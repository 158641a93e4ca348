"""Fast-path variants that were measured and not kept in the product: blocked matmul attention and
``torch.compile`` of the vision tower.

``aaclip_med.model.fast`` keeps what inference runs (prepared weights, SDPA); these variants stay
here so ``block.py`` and ``forward.py`` can time them again on machines where SDPA might trail the
linears (measured slower on the CPUs in ``benchmarks/README.md``).
"""

from __future__ import annotations

import torch

from aaclip_med.model.fast import FastPredictor, FrozenBlock, weight_layout

__all__ = ["ATTENTION", "MatmulBlock", "VariantPredictor", "frozen_block", "matmul_attention"]

ATTENTION = ("sdpa", "matmul")
# Largest attention-score chunk of the ``matmul`` attention, in elements (64 MB of fp32).
SCORE_CHUNK = 2**24


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int = SCORE_CHUNK) -> torch.Tensor:
    """``softmax(q k^T / sqrt(hd)) v`` through plain matmuls, in chunks of (batch x head) rows.

    The softmax runs in fp32 whatever the input dtype; each chunk's score matrix stays under
    ``chunk`` elements, so memory does not grow with the batch.

    Args:
        q, k, v: (B, h, L, hd).
        chunk: most score elements per chunk.

    Returns:
        (B, h, L, hd) in the dtype of ``q``.
    """
    b, h, length, hd = q.shape
    scale = hd**-0.5
    q, k, v = (t.reshape(b * h, length, hd) for t in (q, k, v))
    # Both products read their right operand transposed (k^T and v^T contiguous): the layout of a
    # linear layer, which every CPU GEMM backend serves at its best rate.
    v_t = v.transpose(1, 2).contiguous()  # (BH, hd, L)
    step = max(1, chunk // (length * length))
    out = torch.empty_like(q)
    for start in range(0, b * h, step):
        sl = slice(start, start + step)
        scores = torch.matmul(q[sl] * scale, k[sl].transpose(1, 2))  # (n, L, L)
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        out[sl] = torch.matmul(probs, v_t[sl].transpose(1, 2))
    return out.view(b, h, length, hd)


class MatmulBlock(FrozenBlock):
    """:class:`FrozenBlock` with :func:`matmul_attention` in place of SDPA."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return matmul_attention(q, k, v)


def _block_type(attention: str) -> type[FrozenBlock]:
    if attention not in ATTENTION:
        raise ValueError(f"Unknown attention {attention!r}; use one of {list(ATTENTION)}.")
    return MatmulBlock if attention == "matmul" else FrozenBlock


def frozen_block(block: torch.nn.Module, mode: str, attention: str = "sdpa", layout: str | None = None,
                 rows: int = 1024) -> FrozenBlock:
    """A prepared block with ``attention`` (``sdpa`` or ``matmul``) and weight ``layout`` (None: the
    fast path's choice for the block's device and ``mode``, :func:`aaclip_med.model.fast.weight_layout`)."""
    layout = layout or weight_layout(block.attn.in_proj_weight.device, mode)
    return _block_type(attention)(block, mode, layout, rows)


class VariantPredictor(FastPredictor):
    """:class:`FastPredictor` with a chosen attention, optionally with its vision tower compiled.

    Args:
        model, precision: as :class:`FastPredictor`.
        attention: ``sdpa`` (the product's) or ``matmul``.
        compile: ``torch.compile`` the vision tower (first call compiles: minutes on ViT-L).
    """

    def __init__(self, model, precision: str = "auto", attention: str = "sdpa", compile: bool = False) -> None:
        self.block_type = _block_type(attention)
        super().__init__(model, precision)
        if compile:
            self._vision_tokens = torch.compile(self._vision_tokens, dynamic=False)
