"""Fast inference path of AA-CLIP: frozen weights prepared once, fused attention, batched maps.

``AAClip.predict`` in fp32 stays the reference. This path computes the same quantities (spec
section 5) with:

- ``torch.inference_mode`` (no autograd bookkeeping);
- the frozen vision blocks' matmul weights prepared ONCE when the predictor is made: shared as
  they are for fp32, a bf16/fp16 copy for reduced precision, packed int8 for ``int8``. Autocast
  would cast every frozen weight again on every call (its cast cache only keeps weights that
  require gradients), about 0.6 GB of conversions per ViT-L forward. The model itself is not
  changed: training and the reference keep their fp32 weights;
  the copy costs memory once (ViT-L: ~0.6 GB in bf16, ~0.3 GB packed int8, nothing for fp32);
- what accuracy needs stays fp32: the residual stream and layer norms of every block (as under
  autocast), the adapters, the heads, the patch logits (``logit_scale`` = 100 multiplies every
  rounding error of ``f @ T``), the maps and the smoothing;
- fused attention: one packed QKV matmul, then ``scaled_dot_product_attention`` (``sdpa``) or
  a blocked ``softmax(q k^T) v`` through plain matmuls (``matmul``), on (B, heads, L, head_dim);
- the anomaly map of all levels at once: the 4 level maps are smoothed together on the patch
  grid, summed there and upsampled ONCE (bilinear upsampling is linear: same map up to float
  rounding as upsampling each level and summing, the reference's order);
- chunked batching and an optional ``torch.compile`` of the vision tower.

``sdpa`` is the default: ``matmul`` attention and ``torch.compile`` measured slower on an AVX2
CPU (``benchmarks/block.py``) and stay options for machines where SDPA trails the linears.

If the frozen weights change after the predictor was made (their version counters move), the
prepared copies are rebuilt before the next forward: a stale copy is never used.

Maps and scores are returned in float32.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from aaclip_med.model.aaclip import AAClip, ImageFeatures, Prediction
from aaclip_med.precision import autocast, precision_dtype, resolve_precision

__all__ = ["ATTENTION", "FastPredictor", "FrozenBlock", "FrozenLinear", "fast_predict", "fused_block_forward"]

logger = logging.getLogger(__name__)

ATTENTION = ("sdpa", "matmul")
# Largest attention-score chunk of the ``matmul`` attention, in elements (64 MB of fp32).
_SCORE_CHUNK = 2**24


def _fusable(block: nn.Module) -> bool:
    """Whether ``block`` is an open_clip ResidualAttentionBlock with packed-QKV self-attention."""
    attn = getattr(block, "attn", None)
    return (
        isinstance(attn, nn.MultiheadAttention)
        and attn.batch_first
        and attn._qkv_same_embed_dim
        and attn.bias_k is None
        and not hasattr(block, "ln_1_kv")
    )


def _plain_mlp(block: nn.Module) -> bool:
    """Whether the block's MLP is exactly c_fc -> activation -> c_proj (open_clip's default)."""
    mlp = getattr(block, "mlp", None)
    return (
        isinstance(mlp, nn.Sequential)
        and list(mlp._modules) == ["c_fc", "gelu", "c_proj"]
        and isinstance(mlp.c_fc, nn.Linear)
        and isinstance(mlp.c_proj, nn.Linear)
    )


def fused_block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An open_clip residual block with its attention as one QKV matmul + fused SDPA.

    Same result as ``block(x)`` (up to float rounding) for a batch-first block without mask, with
    the block's own weights: the unprepared form of :class:`FrozenBlock`'s computation.

    Args:
        block: open_clip ``ResidualAttentionBlock`` (see :func:`_fusable`).
        x: tokens (B, L, W).
    """
    attn = block.attn
    b, length, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)  # (B, L, 3W)
    qkv = qkv.view(b, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)  # (3, B, h, L, hd)
    out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, h, L, hd)
    out = out.transpose(1, 2).reshape(b, length, width)  # (B, L, W)
    x = x + block.ls_1(attn.out_proj(out))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(hd)) v`` through plain matmuls, in chunks of (batch x head) rows.

    The softmax runs in fp32 whatever the input dtype; each chunk's score matrix stays under
    ``_SCORE_CHUNK`` elements, so memory does not grow with the batch.

    Args:
        q, k, v: (B, h, L, hd).

    Returns:
        (B, h, L, hd) in the dtype of ``q``.
    """
    b, h, length, hd = q.shape
    scale = hd**-0.5
    q, k, v = (t.reshape(b * h, length, hd) for t in (q, k, v))
    # Both products read their right operand transposed (k^T and v^T contiguous): the layout of a
    # linear layer, which every CPU GEMM backend serves at its best rate.
    v_t = v.transpose(1, 2).contiguous()  # (BH, hd, L)
    step = max(1, _SCORE_CHUNK // (length * length))
    out = torch.empty_like(q)
    for start in range(0, b * h, step):
        sl = slice(start, start + step)
        scores = torch.matmul(q[sl] * scale, k[sl].transpose(1, 2))  # (n, L, L)
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        out[sl] = torch.matmul(probs, v_t[sl].transpose(1, 2))
    return out.view(b, h, length, hd)


# ---------------------------------------------------------------------------- prepared weights
def _int8_available() -> bool:
    return hasattr(torch.ops, "quantized") and hasattr(torch.ops.quantized, "linear_dynamic")


class FrozenLinear:
    """A frozen linear layer with its weight prepared once for the fast path.

    Modes: ``fp32`` shares the source tensors (nothing copied); ``bf16``/``fp16`` keep a copy in
    that dtype (inputs are cast, outputs are in that dtype); ``int8`` packs the weight per output
    channel (symmetric, int8) for dynamic quantisation: each call quantises its input per tensor
    and returns float32 (the backend's dynamic int8 GEMM, FBGEMM/oneDNN on x86).

    Args:
        weight: (out, in) source weight.
        bias: (out,) or None.
        mode: ``fp32``, ``bf16``, ``fp16`` or ``int8``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, mode: str) -> None:
        self.sources = tuple(t for t in (weight, bias) if t is not None)
        self.out_features = weight.shape[0]
        self.packed = None
        if mode == "int8":
            self.packed = _pack_int8(weight, bias)
            self.weight = self.bias = None
            return
        dtype = precision_dtype(mode) or torch.float32
        self.weight = weight.detach().to(dtype)
        self.bias = None if bias is None else bias.detach().to(dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            flat = x.float().reshape(-1, x.shape[-1])
            out = torch.ops.quantized.linear_dynamic(flat, self.packed, True)  # reduce_range: x86 safe
            return out.view(*x.shape[:-1], self.out_features)
        return F.linear(x.to(self.weight.dtype), self.weight, self.bias)


def _pack_int8(weight: torch.Tensor, bias: torch.Tensor | None):
    if not _int8_available():
        raise ValueError("This PyTorch build has no dynamic int8 linear (torch.ops.quantized); use precision 'fp32'.")
    w = weight.detach().float().cpu().contiguous()
    scales = (w.abs().amax(dim=1).clamp_min(1e-12) / 127.0).double()
    zeros = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's deprecation notice of quantised tensors
        qweight = torch.quantize_per_channel(w, scales, zeros, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(qweight, None if bias is None else bias.detach().float().cpu())


class FrozenBlock:
    """An open_clip residual block with its four matmul weights prepared (see :class:`FrozenLinear`).

    The residual stream, the layer norms and the layer scales stay fp32 (as under autocast); the
    QKV, attention, out-projection and MLP run in the prepared dtype.

    Args:
        block: a block accepted by :func:`FrozenBlock.supports`.
        mode: ``fp32``, ``bf16``, ``fp16`` or ``int8``.
        attention: ``sdpa`` or ``matmul`` (see :func:`matmul_attention`).
    """

    def __init__(self, block: nn.Module, mode: str, attention: str = "sdpa") -> None:
        if attention not in ATTENTION:
            raise ValueError(f"Unknown attention {attention!r}; use one of {list(ATTENTION)}.")
        attn, mlp = block.attn, block.mlp
        self.block, self.heads, self.attention = block, attn.num_heads, attention
        self.qkv = FrozenLinear(attn.in_proj_weight, attn.in_proj_bias, mode)
        self.out = FrozenLinear(attn.out_proj.weight, attn.out_proj.bias, mode)
        self.fc = FrozenLinear(mlp.c_fc.weight, mlp.c_fc.bias, mode)
        self.proj = FrozenLinear(mlp.c_proj.weight, mlp.c_proj.bias, mode)
        self.versions = self._versions()

    @staticmethod
    def supports(block: nn.Module) -> bool:
        return _fusable(block) and _plain_mlp(block)

    def _versions(self) -> tuple[int, ...]:
        return tuple(t._version for lin in (self.qkv, self.out, self.fc, self.proj) for t in lin.sources)

    def stale(self) -> bool:
        """True when a source weight was modified in place since it was prepared."""
        return self._versions() != self.versions

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, W) float32 tokens -> (B, L, W) float32."""
        block = self.block
        b, length, width = x.shape
        qkv = self.qkv(block.ln_1(x))  # (B, L, 3W)
        qkv = qkv.view(b, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if self.attention == "sdpa":
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, h, L, hd)
        else:
            out = matmul_attention(qkv[0], qkv[1], qkv[2])
        out = out.transpose(1, 2).reshape(b, length, width)
        x = x + block.ls_1(self.out(out).float())
        hidden = block.mlp.gelu(self.fc(block.ln_2(x)))
        return x + block.ls_2(self.proj(hidden).float())


# ---------------------------------------------------------------------------- predictor
class FastPredictor:
    """Batched, reduced-precision inference of one :class:`AAClip` (its weights are not changed).

    Args:
        model: the network; it is only read. Its adapters and heads are used live; its frozen
            vision blocks are prepared once (a copy in bf16/fp16, packed for int8; fp32 shares them).
        precision: ``auto``, ``fp32``, ``bf16``, ``fp16`` or ``int8`` (see :mod:`aaclip_med.precision`).
        compile: wrap the vision tower in ``torch.compile`` (first call compiles: minutes on ViT-L).
        fused_attention: run prepared fused blocks; False runs each block's own forward (under
            autocast for bf16/fp16), the slow path kept for comparison.
        batch_size: images per forward; larger inputs are split (None: all at once).
        attention: ``sdpa`` (fused kernel) or ``matmul`` (blocked matmul attention).
    """

    def __init__(
        self,
        model: AAClip,
        precision: str = "auto",
        compile: bool = False,
        fused_attention: bool = True,
        batch_size: int | None = None,
        attention: str = "sdpa",
    ) -> None:
        self.model = model
        self.device = model.clip.visual.conv1.weight.device
        self.precision = resolve_precision(precision, self.device, inference=True)
        if attention not in ATTENTION:
            raise ValueError(f"Unknown attention {attention!r}; use one of {list(ATTENTION)}.")
        if not fused_attention and self.precision == "int8":
            raise ValueError("precision 'int8' needs the prepared fused blocks; leave fused_attention on.")
        self.fused_attention = fused_attention
        self.attention = attention
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive number of images, got {batch_size}.")
        self.batch_size = batch_size
        self._prepared: dict[int, FrozenBlock] = {}
        if fused_attention:
            self._prepare()
        self._tokens: Callable[[torch.Tensor], list[torch.Tensor]] = self._vision_tokens
        if compile:
            self._tokens = torch.compile(self._vision_tokens, dynamic=False)
        logger.info(
            "Fast path on %s: %s weights prepared once, attention %s, compile %s",
            self.device,
            self.precision,
            attention if fused_attention else "unfused",
            compile,
        )

    def _blocks(self) -> list[nn.Module]:
        return list(self.model.clip.visual.transformer.resblocks[: self.model.config.levels[-1]])

    def _prepare(self) -> None:
        """Prepare every supported frozen block once (int8 packing / reduced-precision copies)."""
        self._prepared.clear()
        skipped = 0
        for block in self._blocks():
            if FrozenBlock.supports(block):
                self._prepared[id(block)] = FrozenBlock(block, self.precision, self.attention)
            else:
                skipped += 1
        if skipped and self.precision == "int8":
            raise ValueError(f"{skipped} vision block(s) of this backbone cannot be quantised; use precision 'fp32'.")
        if skipped:
            logger.warning("%d vision block(s) have a layout the fast path does not know: they run as they are.", skipped)

    def _refresh(self) -> None:
        if any(p.stale() for p in self._prepared.values()):
            logger.info("Frozen vision weights changed since the fast path prepared them: preparing again.")
            self._prepare()

    def _block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        prepared = self._prepared.get(id(block))
        if prepared is not None:
            return prepared(x)
        with autocast(self.precision, self.device):  # a no-op for fp32 and int8
            return block(x).float()

    def _vision_tokens(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Tokens (B, 1+L, W) float32 after each tapped block, via the model's own loop."""
        return self.model._vision_tokens(images, block_forward=self._block)

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """As :meth:`AAClip.encode_image` (no gradients): prepared blocks, adapters and heads in fp32."""
        with torch.inference_mode():
            images = images.to(self.device, torch.float32)
            if self.fused_attention:
                self._refresh()
                taps = self._tokens(images)
            else:  # the slow comparison path: each block's own forward under autocast
                with autocast(self.precision, self.device):
                    taps = self.model._vision_tokens(images)
            return self.model.features_from_tokens([t.float() for t in taps])

    def _predict_chunk(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        feats = self.encode_image(images)
        size = tuple(images.shape[-2:])
        pred = self.model.predict_from_features(feats, anchors, domain, size, sum_first=True)
        return Prediction(*(t.float() for t in pred))

    def __call__(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        """Maps (B, H, W) and scores (B,), all float32, for CLIP-normalised images (B, 3, S, S).

        Args:
            images: (B, 3, S, S).
            anchors: (D, 2) shared, or (B, D, 2) per image (e.g. ``model.text_anchors(desc)``).
            domain: ``medical`` or ``industrial``.
        """
        anchors = anchors.to(self.device, torch.float32)
        step = self.batch_size or max(1, images.shape[0])
        parts = []
        with torch.inference_mode():
            for start in range(0, images.shape[0], step):
                chunk_anchors = anchors if anchors.dim() == 2 else anchors[start : start + step]
                parts.append(self._predict_chunk(images[start : start + step], chunk_anchors, domain))
        return Prediction(*(torch.cat(field) for field in zip(*parts)))


def fast_predict(
    model: AAClip,
    images: torch.Tensor,
    anchors: torch.Tensor,
    domain: str,
    precision: str = "auto",
    compile: bool = False,
    batch_size: int | None = None,
) -> Prediction:
    """One-shot :class:`FastPredictor` call; keep a predictor instead when calling repeatedly."""
    predictor = FastPredictor(model, precision=precision, compile=compile, batch_size=batch_size)
    return predictor(images, anchors, domain)
