"""Fast inference path: same numbers as the fp32 reference, float32 outputs, precision choice."""

import pytest
import torch

from aaclip_med.keys import Domain
from aaclip_med.model.fast import (
    FastPredictor,
    autocast_dtype,
    cpu_supports_bf16,
    fast_predict,
    fused_block_forward,
)


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


def test_precision_choice(tmp_path):
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if cpu_supports_bf16() else None)
    with pytest.raises(ValueError, match="fp16 autocast is for GPUs"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(ValueError, match="Unknown precision 'int4'"):
        autocast_dtype("int4", cpu)


def test_cpu_bf16_detection_reads_flags(tmp_path):
    native = tmp_path / "native"
    native.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx2\n")
    emulated = tmp_path / "emulated"
    emulated.write_text("flags\t\t: fpu sse avx512f avx512bw avx2\n")
    arm = tmp_path / "arm"
    arm.write_text("Features\t: fp asimd bf16 i8mm\n")
    assert cpu_supports_bf16(native) and cpu_supports_bf16(arm)
    assert not cpu_supports_bf16(emulated)
    assert not cpu_supports_bf16(tmp_path / "missing")


def test_bad_batch_size(tiny_model):
    with pytest.raises(ValueError, match="batch_size"):
        FastPredictor(tiny_model, "fp32", batch_size=0)
