"""Fast inference path: same numbers as the fp32 reference, float32 outputs."""

import pytest
import torch

from aaclip_med.keys import Domain
from aaclip_med.model.fast import FastPredictor, fast_predict, fused_block_forward


def _images(count: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, 112, 112, generator=gen) * torch.linspace(0.3, 1.5, count).view(-1, 1, 1, 1)


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1])


@pytest.mark.parametrize("domain", [Domain.MEDICAL, Domain.INDUSTRIAL])
def test_fp32_fast_path_equals_reference(tiny_model, domain):
    images = _images(3)
    anchors = tiny_model.text_anchors("widget")
    with torch.no_grad():
        ref = tiny_model.predict(images, anchors, domain)
    out = FastPredictor(tiny_model, precision="fp32")(images, anchors, domain)
    for got, want in zip(out, ref):
        assert got.dtype == torch.float32 and got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_unfused_and_chunked_paths_equal_reference(tiny_model):
    images = _images(5)
    anchors = tiny_model.text_anchors("widget")
    per_image = anchors.unsqueeze(0).repeat(5, 1, 1)  # (B, D, 2) anchors are split with the batch
    with torch.no_grad():
        ref = tiny_model.predict(images, anchors, Domain.MEDICAL)
    out = FastPredictor(tiny_model, "fp32", fused_attention=False, batch_size=2)(images, per_image, "medical")
    torch.testing.assert_close(out.anomaly_map, ref.anomaly_map, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.image_score, ref.image_score, rtol=1e-5, atol=1e-5)


def test_fused_block_matches_open_clip_block(tiny_model):
    block = tiny_model.clip.visual.transformer.resblocks[0]
    x = torch.randn(2, 65, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused_block_forward(block, x), block(x), rtol=1e-5, atol=1e-5)


def test_bf16_path_tracks_fp32(tiny_model):
    images = _images(6)
    anchors = tiny_model.text_anchors("widget")
    ref = FastPredictor(tiny_model, "fp32")(images, anchors, "industrial")
    out = fast_predict(tiny_model, images, anchors, "industrial", precision="bf16")
    assert out.anomaly_map.dtype == torch.float32 and out.image_score.dtype == torch.float32
    assert out.anomaly_map.shape == (6, 112, 112)
    assert _corr(out.anomaly_map, ref.anomaly_map) > 0.999
    assert _corr(out.image_score, ref.image_score) > 0.99


def test_bad_batch_size(tiny_model):
    with pytest.raises(ValueError, match="batch_size"):
        FastPredictor(tiny_model, "fp32", batch_size=0)
