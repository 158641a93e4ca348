"""Fast inference path of AA-CLIP: frozen weights prepared once, fused attention, batched maps.

``AAClip.predict`` in fp32 stays the reference. This path computes the same quantities (spec
section 5) with:

- ``torch.inference_mode`` (no autograd bookkeeping);
- the frozen vision blocks' matmul weights prepared ONCE when the predictor is made: on a CPU
  whose PyTorch has oneDNN, fp32 and bf16 weights are reordered into oneDNN's blocked layout and
  run by its linear kernel (``torch.ops.mkldnn._linear_pointwise``, what inductor's freezing
  uses), with the MLP's exact GELU fused into the first linear; elsewhere fp32 weights are shared
  as they are and reduced precision gets a plain bf16/fp16 copy; ``int8`` packs them for dynamic
  int8. Measured on an AVX-512 EPYC, the blocked layout runs a ViT-L linear ~1.3x faster than
  ``F.linear`` (MKL), in fp32 and bf16, and is what brings the fast path level with OpenVINO fp32
  (``benchmarks/block.py``, ``benchmarks/export_engines.py``). Autocast would cast every frozen
  weight again on every call (its cast cache only keeps weights that require gradients), about
  0.6 GB of conversions per ViT-L forward. The model itself is not changed: training and the
  reference keep their fp32 weights; the prepared copy costs memory once (ViT-L: ~1.2 GB blocked
  fp32, ~0.6 GB in bf16, ~0.3 GB packed int8; nothing for plain fp32). The blocked layout is
  checked against ``F.linear`` on the first weight it prepares: a build whose kernel disagrees
  falls back to the plain layout with a warning;
- what accuracy needs stays fp32: the residual stream and layer norms of every block (as under
  autocast), the adapters, the heads, the patch logits (``logit_scale`` = 100 multiplies every
  rounding error of ``f @ T``), the maps and the smoothing;
- fused attention: one packed QKV matmul, then ``scaled_dot_product_attention`` on
  (B, heads, L, head_dim);
- the anomaly map of all levels at once: the 4 level maps are smoothed together on the patch
  grid, summed there and upsampled ONCE (bilinear upsampling is linear: same map up to float
  rounding as upsampling each level and summing, the reference's order).

Variants measured and not kept (blocked matmul attention, ``torch.compile``) live in
``benchmarks/_variants.py``; ``benchmarks/block.py`` and ``benchmarks/forward.py`` time them.

If the frozen weights change after the predictor was made (modified in place, or a parameter
replaced), the prepared copies are rebuilt before the next forward: a stale copy is never used.
In-place changes are seen through PyTorch's tensor version counter (``Tensor._version``, pinned
by ``tests/model/test_fast.py``); changes through ``param.data`` bypass that counter and are not
seen (load weights with ``load_state_dict`` or under ``torch.no_grad``).

Maps and scores are returned in float32.
"""

from __future__ import annotations

import functools
import logging
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from aaclip_med.model.aaclip import AAClip, ImageFeatures, Prediction
from aaclip_med.precision import autocast, precision_dtype, resolve_precision

__all__ = ["LAYOUTS", "FastPredictor", "FrozenBlock", "FrozenLinear", "onednn_layout_works", "weight_layout"]

logger = logging.getLogger(__name__)


def _fusable(block: nn.Module) -> bool:
    """Whether ``block`` is an open_clip ResidualAttentionBlock with packed-QKV self-attention."""
    attn = getattr(block, "attn", None)
    return (
        isinstance(attn, nn.MultiheadAttention)
        and attn.batch_first
        and attn.in_proj_weight is not None  # one packed (3W, W) QKV weight, not three
        and attn.bias_k is None
        and not hasattr(block, "ln_1_kv")
    )


def _plain_mlp(block: nn.Module) -> bool:
    """Whether the block's MLP is exactly c_fc -> activation -> c_proj (open_clip's default)."""
    mlp = getattr(block, "mlp", None)
    return (
        isinstance(mlp, nn.Sequential)
        and [name for name, _ in mlp.named_children()] == ["c_fc", "gelu", "c_proj"]
        and isinstance(mlp.c_fc, nn.Linear)
        and isinstance(mlp.c_proj, nn.Linear)
    )


# ---------------------------------------------------------------------------- prepared weights
def _int8_available() -> bool:
    return hasattr(torch.ops, "quantized") and hasattr(torch.ops.quantized, "linear_dynamic")


#: weight layouts of :class:`FrozenLinear`: ``onednn`` blocked for oneDNN's linear kernel, ``plain`` as F.linear reads it
LAYOUTS = ("onednn", "plain")
#: oneDNN post-op of each activation the blocked layout fuses into its linear (exact and tanh GELU)
_FUSED_ACTIVATIONS = {"gelu": ("gelu", "none"), "gelu_tanh": ("gelu", "tanh")}


def _onednn_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, activation: str | None):
    post_op, algorithm = _FUSED_ACTIVATIONS[activation] if activation else ("none", "")
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, post_op, [], algorithm)


@functools.cache
def onednn_layout_works(dtype: torch.dtype = torch.float32) -> bool:
    """Whether this PyTorch runs oneDNN's blocked linear on the CPU and agrees with ``F.linear``.

    The kernel is a private operator (inductor's): it is probed once per dtype on a small layer, so
    a build without it, or one whose kernel gives other numbers, runs the plain layout instead.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(48, 40, generator=gen), torch.randn(48, generator=gen)
    x = torch.randn(3, 7, 40, generator=gen)
    try:
        with torch.inference_mode():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.to(dtype), 21)
            got = _onednn_linear(x.to(dtype), packed, bias.to(dtype), "gelu").float()
    except (RuntimeError, AttributeError, NotImplementedError) as err:
        logger.info("oneDNN blocked linear unavailable for %s (%s): plain layout", dtype, err)
        return False
    want = F.gelu(F.linear(x.to(dtype), weight.to(dtype), bias.to(dtype))).float()
    tolerance = 1e-5 if dtype == torch.float32 else 5e-2
    if got.shape != want.shape or not torch.allclose(got, want, rtol=tolerance, atol=tolerance):
        logger.warning("oneDNN's blocked linear disagrees with F.linear in %s on this PyTorch build: the fast path "
                       "uses the plain layout (slower)", dtype)
        return False
    return True


def weight_layout(device: torch.device, mode: str) -> str:
    """The layout :class:`FrozenLinear` prepares on ``device`` in ``mode``: ``onednn`` for fp32 and bf16 on a
    CPU whose PyTorch has a working oneDNN linear, else ``plain``."""
    if torch.device(device).type != "cpu" or mode not in ("fp32", "bf16"):
        return "plain"
    return "onednn" if onednn_layout_works(precision_dtype(mode) or torch.float32) else "plain"


class FrozenLinear:
    """A frozen linear layer with its weight prepared once for the fast path.

    Modes: ``fp32`` (float32), ``bf16``/``fp16`` (inputs are cast, outputs are in that dtype) and
    ``int8``: the weight packed per output channel (symmetric, int8) for dynamic quantisation, each
    call quantising its input per tensor and returning float32 (FBGEMM/oneDNN on x86).

    Layouts of fp32/bf16/fp16 (:func:`weight_layout`): ``onednn`` reorders the weight once into
    oneDNN's blocked layout (a copy) and fuses ``activation`` into the kernel; ``plain`` keeps the
    weight as ``F.linear`` reads it (fp32: the source tensor itself, nothing copied).

    Args:
        weight: (out, in) source weight.
        bias: (out,) or None.
        mode: ``fp32``, ``bf16``, ``fp16`` or ``int8``.
        layout: ``onednn`` or ``plain`` (ignored for int8).
        activation: None, ``gelu`` (exact) or ``gelu_tanh``, applied to the output.
        rows: typical number of input rows (tokens per forward), a hint for the blocked layout.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, mode: str, layout: str = "plain",
                 activation: str | None = None, rows: int = 1024) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown weight layout {layout!r}; choose one of {list(LAYOUTS)}")
        if activation is not None and activation not in _FUSED_ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {list(_FUSED_ACTIVATIONS)}")
        self.out_features = weight.shape[0]
        self.activation = activation
        self.packed = None
        self.layout = "plain" if mode == "int8" else layout
        if mode == "int8":
            self.packed = _pack_int8(weight, bias)
            self.weight = self.bias = None
            return
        dtype = precision_dtype(mode) or torch.float32
        self.weight = weight.detach().to(dtype)
        self.bias = None if bias is None else bias.detach().to(dtype)
        if self.layout == "onednn":
            with torch.inference_mode():
                self.weight = torch.ops.mkldnn._reorder_linear_weight(self.weight.contiguous(), rows)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            flat = x.float().reshape(-1, x.shape[-1])
            out = torch.ops.quantized.linear_dynamic(flat, self.packed, True)  # reduce_range: x86 safe
            return self._activate(out.view(*x.shape[:-1], self.out_features))
        x = x.to(self.weight.dtype)
        if self.layout == "onednn":
            return _onednn_linear(x.contiguous(), self.weight, self.bias, self.activation)
        return self._activate(F.linear(x, self.weight, self.bias))

    def _activate(self, out: torch.Tensor) -> torch.Tensor:
        if self.activation is None:
            return out
        return F.gelu(out, approximate="tanh" if self.activation == "gelu_tanh" else "none")


def _gelu_kind(module: nn.Module) -> str | None:
    """The fusable name of an MLP activation: exactly ``nn.GELU`` (exact or tanh); None for others (QuickGELU)."""
    if type(module) is nn.GELU:
        return "gelu_tanh" if module.approximate == "tanh" else "gelu"
    return None


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


def _source_weights(block: nn.Module) -> tuple[torch.Tensor, ...]:
    """The block's four matmul weights and their biases, as the block holds them now."""
    attn, mlp = block.attn, block.mlp
    tensors = (
        attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight, attn.out_proj.bias,
        mlp.c_fc.weight, mlp.c_fc.bias, mlp.c_proj.weight, mlp.c_proj.bias,
    )
    return tuple(t for t in tensors if t is not None)


def _fingerprint(tensors: tuple[torch.Tensor, ...]) -> tuple[tuple[int, int], ...]:
    # id: a parameter replaced by another; _version: PyTorch's in-place modification counter
    return tuple((id(t), t._version) for t in tensors)


class FrozenBlock:
    """An open_clip residual block with its four matmul weights prepared (see :class:`FrozenLinear`).

    The residual stream, the layer norms and the layer scales stay fp32 (as under autocast); the
    QKV, attention, out-projection and MLP run in the prepared dtype.

    The MLP's activation is applied by the first MLP linear when it is exactly ``nn.GELU`` (fused
    into the kernel in the ``onednn`` layout); any other activation (QuickGELU) runs as the block's
    own module.

    Args:
        block: a block accepted by :func:`FrozenBlock.supports`.
        mode: ``fp32``, ``bf16``, ``fp16`` or ``int8``.
        layout: weight layout of the fp32/bf16/fp16 linears (:data:`LAYOUTS`, see :func:`weight_layout`).
        rows: typical tokens per forward (a hint for the ``onednn`` layout).
    """

    def __init__(self, block: nn.Module, mode: str, layout: str = "plain", rows: int = 1024) -> None:
        attn, mlp = block.attn, block.mlp
        self.block, self.heads = block, attn.num_heads
        prepare = functools.partial(FrozenLinear, mode=mode, layout=layout, rows=rows)
        self.qkv = prepare(attn.in_proj_weight, attn.in_proj_bias)
        self.out = prepare(attn.out_proj.weight, attn.out_proj.bias)
        self.fc = prepare(mlp.c_fc.weight, mlp.c_fc.bias, activation=_gelu_kind(mlp.gelu))
        self.proj = prepare(mlp.c_proj.weight, mlp.c_proj.bias)
        self._sources = _source_weights(block)  # held so their ids stay theirs while we compare
        self.fingerprint = _fingerprint(self._sources)

    @staticmethod
    def supports(block: nn.Module) -> bool:
        return _fusable(block) and _plain_mlp(block)

    def stale(self) -> bool:
        """True when a source weight was modified in place or replaced since it was prepared."""
        return _fingerprint(_source_weights(self.block)) != self.fingerprint

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T / sqrt(hd)) v`` on (B, h, L, hd)."""
        return F.scaled_dot_product_attention(q, k, v)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, W) float32 tokens -> (B, L, W) float32."""
        block = self.block
        b, length, width = x.shape
        qkv = self.qkv(block.ln_1(x))  # (B, L, 3W)
        qkv = qkv.view(b, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, h, L, hd)
        out = self.attend(qkv[0], qkv[1], qkv[2])  # (B, h, L, hd)
        out = out.transpose(1, 2).reshape(b, length, width)  # (B, L, W)
        x = x + block.ls_1(self.out(out).float())
        hidden = self.fc(block.ln_2(x))
        if self.fc.activation is None:
            hidden = block.mlp.gelu(hidden)
        return x + block.ls_2(self.proj(hidden).float())


# ---------------------------------------------------------------------------- predictor
class FastPredictor:
    """Reduced-precision inference of one :class:`AAClip` (its weights are not changed).

    Args:
        model: the network; it is only read. Its adapters and heads are used live; its frozen
            vision blocks are prepared once (a copy in bf16/fp16, packed for int8; fp32 shares them).
        precision: ``auto``, ``fp32``, ``bf16``, ``fp16`` or ``int8`` (see :mod:`aaclip_med.precision`).
        layout: weight layout of the prepared linears (:data:`LAYOUTS`); None: :func:`weight_layout`'s
            choice for the device and precision (the benchmarks ask for ``plain`` to compare).
    """

    #: how a supported block is prepared (the benchmarks swap in their attention variants)
    block_type: type[FrozenBlock] = FrozenBlock

    def __init__(self, model: AAClip, precision: str = "auto", layout: str | None = None) -> None:
        self.model = model
        self.device = model.clip.visual.conv1.weight.device
        self.precision = resolve_precision(precision, self.device, inference=True)
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"unknown weight layout {layout!r}; choose one of {list(LAYOUTS)}")
        self.layout = layout or weight_layout(self.device, self.precision)
        self._prepared: dict[int, FrozenBlock] = {}
        self._prepare()
        logger.info("Fast path on %s: %s weights prepared once (%s layout)", self.device, self.precision,
                    "int8 packed" if self.precision == "int8" else self.layout)

    def _blocks(self) -> list[nn.Module]:
        return list(self.model.clip.visual.transformer.resblocks[: self.model.config.levels[-1]])

    def _prepare(self) -> None:
        """Prepare every supported frozen block once (int8 packing / reduced-precision copies)."""
        self._prepared.clear()
        skipped = 0
        for block in self._blocks():
            if FrozenBlock.supports(block):
                self._prepared[id(block)] = self.block_type(block, self.precision, self.layout, self._tokens())
            else:
                skipped += 1
        if skipped and self.precision == "int8":
            raise ValueError(f"{skipped} vision block(s) of this backbone cannot be quantised; use precision 'fp32'.")
        if skipped:
            logger.warning("%d vision block(s) have a layout the fast path does not know: they run as they are.", skipped)

    def _tokens(self) -> int:
        """Tokens of one image (class token + patch grid): the rows the blocked layout is prepared for."""
        rows, cols = self.model.grid_size
        return rows * cols + 1

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
            self._refresh()
            taps = self._vision_tokens(images.to(self.device, torch.float32))
            return self.model.features_from_tokens([t.float() for t in taps])

    def __call__(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        """Maps (B, H, W) and scores (B,), all float32, for CLIP-normalised images (B, 3, S, S).

        Args:
            images: (B, 3, S, S).
            anchors: (D, 2) shared, or (B, D, 2) per image (e.g. ``model.text_anchors(desc)``).
            domain: ``medical`` or ``industrial``.
        """
        with torch.inference_mode():
            feats = self.encode_image(images)
            anchors = anchors.to(self.device, torch.float32)
            size = tuple(images.shape[-2:])
            pred = self.model.predict_from_features(feats, anchors, domain, size, sum_first=True)
            return Prediction(*(t.float() for t in pred))
