"""Analytic FLOP count of benchmarks/flops.py vs torch's FlopCounterMode, and the paper configuration's size."""

import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from aaclip_med.model import AAClipConfig
from aaclip_med.model.fast import FastPredictor

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from flops import count_predict_flops, vision_dims  # noqa: E402


def _counted(run) -> int:
    # The math SDPA backend decomposes attention into bmm, which FlopCounterMode counts; the fused
    # CPU kernels have no FLOP formula and would be missed.
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        run()
    return counter.get_total_flops()


@pytest.mark.parametrize("domain,kernel", [("medical", 9), ("industrial", 7)])
def test_analytic_count_matches_flop_counter(tiny_model, domain, kernel):
    images = torch.randn(2, 3, 112, 112)
    anchors = tiny_model.text_anchors("widget")
    # the plain layout: the oneDNN linear of the blocked one has no FLOP formula either
    measured = _counted(lambda: FastPredictor(tiny_model, "fp32", layout="plain")(images, anchors, domain))
    analytic = count_predict_flops(tiny_model.config, batch=2, smoothing_kernel=kernel)["total"]
    assert analytic == pytest.approx(measured, rel=0.02)


def test_reference_predict_count_with_decomposed_attention(tiny_model):
    # Inputs that require grad keep nn.MultiheadAttention off its native fused kernel (uncounted).
    images = torch.randn(1, 3, 112, 112, requires_grad=True)
    anchors = tiny_model.text_anchors("widget")
    measured = _counted(lambda: tiny_model.predict(images, anchors, "medical"))
    assert count_predict_flops(tiny_model.config)["total"] == pytest.approx(measured, rel=0.02)


def test_paper_configuration_is_about_one_tflop_per_image():
    counts = count_predict_flops(AAClipConfig())  # ViT-L-14-336 at 518; nothing is built
    dims = vision_dims(AAClipConfig())
    assert (dims.grid, dims.tokens, dims.width, dims.blocks_run) == (37, 1370, 1024, 24)
    assert 1.00e12 < counts["total"] < 1.08e12  # 1.042e12 by hand: 24 blocks of 42.2 GFLOP + extras
    blocks = sum(counts[k] for k in ("qkv", "attention", "out_proj", "mlp"))
    assert blocks / counts["total"] > 0.95
    assert count_predict_flops(AAClipConfig(), batch=4)["total"] == 4 * counts["total"]
