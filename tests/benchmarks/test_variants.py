"""Fast-path variants kept for the benchmarks only (benchmarks/_variants.py): same numbers as the product's."""

import sys
from pathlib import Path

import pytest
import torch

from aaclip_med.keys import Domain

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _variants import MatmulBlock, VariantPredictor, frozen_block, matmul_attention  # noqa: E402


def test_matmul_attention_equals_sdpa_whole_and_in_ragged_chunks():
    gen = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(3, 4, 50, 16, generator=gen) for _ in range(3))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(matmul_attention(q, k, v), want, rtol=1e-5, atol=1e-5)
    chunked = matmul_attention(q, k, v, chunk=50 * 50 * 5)  # chunks of 5 (batch x head) rows, the last ragged
    torch.testing.assert_close(chunked, want, rtol=1e-5, atol=1e-5)


def test_matmul_predictor_equals_reference(tiny_model):
    images = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    anchors = tiny_model.text_anchors("widget")
    with torch.no_grad():
        ref = tiny_model.predict(images, anchors, Domain.MEDICAL)
    predictor = VariantPredictor(tiny_model, "fp32", attention="matmul")
    assert all(isinstance(p, MatmulBlock) for p in predictor._prepared.values()) and predictor._prepared
    out = predictor(images, anchors, Domain.MEDICAL)
    torch.testing.assert_close(out.anomaly_map, ref.anomaly_map, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.image_score, ref.image_score, rtol=1e-5, atol=1e-5)


def test_unknown_attention_is_refused(tiny_model):
    with pytest.raises(ValueError, match="Unknown attention 'flash'"):
        VariantPredictor(tiny_model, "fp32", attention="flash")
    with pytest.raises(ValueError, match="Unknown attention"):
        frozen_block(tiny_model.clip.visual.transformer.resblocks[0], "fp32", "flash")
