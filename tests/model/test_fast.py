"""Fast inference path: same numbers as the fp32 reference, float32 outputs."""

import pytest
import torch
from scipy.stats import spearmanr

from aaclip_med.keys import Domain
from aaclip_med.model.fast import FastPredictor, FrozenBlock, FrozenLinear, onednn_layout_works, weight_layout
from aaclip_med.precision import resolve_precision
from tests.conftest import make_tiny_model


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


def test_prepared_block_matches_open_clip_block(tiny_model):
    block = tiny_model.clip.visual.transformer.resblocks[0]
    x = torch.randn(2, 65, 64)
    with torch.no_grad():
        torch.testing.assert_close(FrozenBlock(block, "fp32")(x), block(x), rtol=1e-5, atol=1e-5)


def test_bf16_path_tracks_fp32(tiny_model):
    images = _images(6)
    anchors = tiny_model.text_anchors("widget")
    ref = FastPredictor(tiny_model, "fp32")(images, anchors, "industrial")
    out = FastPredictor(tiny_model, "bf16")(images, anchors, "industrial")
    assert out.anomaly_map.dtype == torch.float32 and out.image_score.dtype == torch.float32
    assert out.anomaly_map.shape == (6, 112, 112)
    assert _corr(out.anomaly_map, ref.anomaly_map) > 0.999
    assert _corr(out.image_score, ref.image_score) > 0.99


# ---------------------------------------------------------------- maps: sum on the grid, one upsample
@pytest.mark.parametrize("domain", [Domain.MEDICAL, Domain.INDUSTRIAL])
@pytest.mark.parametrize("size", [(112, 112), (518, 518), (100, 77)])
def test_sum_then_upsample_equals_upsample_then_sum(tiny_model, domain, size):
    gen = torch.Generator().manual_seed(3)
    g = tiny_model.grid_size
    logits = [torch.randn(3, 2, *g, generator=gen) * 30 for _ in range(4)]  # x100-scaled logits
    reference = tiny_model.anomaly_map(logits, domain, size)  # per level: blur, upsample, then sum
    fast = tiny_model.anomaly_map(logits, domain, size, sum_first=True)
    assert fast.shape == reference.shape == (3, *size)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    # the identity is not vacuous: levels differ, and summing un-smoothed levels would not match
    assert (logits[0] - logits[1]).abs().max() > 1


def test_per_image_anchors_equal_shared_anchors(tiny_model):
    images = _images(3)
    anchors = tiny_model.text_anchors("widget")
    per_image = anchors.unsqueeze(0).repeat(3, 1, 1)  # (B, D, 2) anchors, one set per image
    with torch.no_grad():
        ref = tiny_model.predict(images, anchors, Domain.MEDICAL)
    out = FastPredictor(tiny_model, "fp32")(images, per_image, Domain.MEDICAL)
    torch.testing.assert_close(out.anomaly_map, ref.anomaly_map, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.image_score, ref.image_score, rtol=1e-5, atol=1e-5)


def test_weights_prepared_once_model_unchanged(tiny_model):
    block = tiny_model.clip.visual.transformer.resblocks[0]
    shared = FrozenBlock(block, "fp32")
    assert shared.qkv.weight.data_ptr() == block.attn.in_proj_weight.data_ptr()  # fp32: no copy
    predictor = FastPredictor(tiny_model, "bf16")
    prepared = predictor._prepared[id(block)]
    assert prepared.fc.weight.dtype == torch.bfloat16 and prepared.qkv.bias.dtype == torch.bfloat16
    assert len(predictor._prepared) == tiny_model.config.levels[-1]  # every block up to the last tap
    assert all(p.dtype == torch.float32 for p in tiny_model.parameters())  # the model keeps fp32
    predictor(_images(1), tiny_model.text_anchors("widget"), "medical")
    assert predictor._prepared[id(block)] is prepared  # not prepared again per call


def test_changed_frozen_weights_are_prepared_again():
    model = make_tiny_model(seed=5).eval()
    images, anchors = _images(2), model.text_anchors("widget")
    predictor = FastPredictor(model, "bf16")
    before = predictor(images, anchors, "medical")
    with torch.no_grad():
        model.clip.visual.transformer.resblocks[1].mlp.c_fc.weight.mul_(3.0)  # e.g. weights loaded later
        ref = model.predict(images, anchors, "medical")
    after = predictor(images, anchors, "medical")
    assert _corr(after.anomaly_map, ref.anomaly_map) > 0.999
    assert (after.anomaly_map - before.anomaly_map).abs().max() > 10 * (after.anomaly_map - ref.anomaly_map).abs().max()


def test_torch_version_counter_behaves_as_the_staleness_check_needs():
    """Pins the private ``Tensor._version`` the fast path reads: if PyTorch renames it or stops
    counting these writes, this fails here instead of a stale weight copy being used silently."""
    layer = torch.nn.Linear(4, 4)
    weight = layer.weight
    assert isinstance(weight._version, int)
    before = weight._version
    with torch.no_grad():
        weight.mul_(2.0)  # an in-place change under no_grad
    after_mul = weight._version
    assert after_mul > before
    layer.load_state_dict({"weight": torch.ones(4, 4), "bias": torch.zeros(4)})  # how checkpoints load
    assert layer.weight is weight and weight._version > after_mul
    assert weight.detach()._version == weight._version  # detach shares the counter (FrozenLinear's fp32 view)


def test_replaced_or_reloaded_weights_are_prepared_again():
    model = make_tiny_model(seed=9).eval()
    images, anchors = _images(2), model.text_anchors("widget")
    predictor = FastPredictor(model, "fp32")
    block = model.clip.visual.transformer.resblocks[0]
    first = predictor._prepared[id(block)]
    block.mlp.c_proj.weight = torch.nn.Parameter(block.mlp.c_proj.weight.detach() * 2)  # replaced, not modified
    with torch.no_grad():
        ref = model.predict(images, anchors, "medical")
    out = predictor(images, anchors, "medical")
    assert predictor._prepared[id(block)] is not first
    torch.testing.assert_close(out.anomaly_map, ref.anomaly_map, rtol=1e-5, atol=1e-5)
    second = predictor._prepared[id(block)]
    state = {k: v * 0.5 for k, v in block.state_dict().items()}
    block.load_state_dict(state)  # in place, through copy_
    with torch.no_grad():
        ref = model.predict(images, anchors, "medical")
    torch.testing.assert_close(predictor(images, anchors, "medical").anomaly_map, ref.anomaly_map, rtol=1e-5, atol=1e-5)
    assert predictor._prepared[id(block)] is not second


def test_unknown_block_layout_runs_as_is_in_fp32_and_is_refused_for_int8():
    model = make_tiny_model(seed=6).eval()
    block = model.clip.visual.transformer.resblocks[0]
    block.mlp.add_module("extra", torch.nn.Identity())  # a layout the fast path does not know
    assert not FrozenBlock.supports(block)
    images, anchors = _images(2), model.text_anchors("widget")
    with torch.no_grad():
        ref = model.predict(images, anchors, "medical")
    predictor = FastPredictor(model, "fp32")
    assert id(block) not in predictor._prepared
    torch.testing.assert_close(predictor(images, anchors, "medical").anomaly_map, ref.anomaly_map, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="cannot be quantised"):
        FastPredictor(model, "int8")


# ---------------------------------------------------------------- int8 (CPU, inference only)
def test_int8_tracks_fp32(tiny_model):
    images = _images(12, seed=7)
    anchors = tiny_model.text_anchors("widget")
    ref = FastPredictor(tiny_model, "fp32")(images, anchors, "industrial")
    predictor = FastPredictor(tiny_model, "int8")
    assert predictor.precision == "int8"
    out = predictor(images, anchors, "industrial")
    assert out.anomaly_map.dtype == torch.float32 and out.anomaly_map.shape == (12, 112, 112)
    for i in range(12):
        assert _corr(out.anomaly_map[i], ref.anomaly_map[i]) >= 0.999
    assert float(spearmanr(out.image_score, ref.image_score).statistic) >= 0.999
    assert not torch.equal(out.anomaly_map, ref.anomaly_map)  # it did run quantised


def test_int8_is_inference_only_and_cpu_only():
    assert resolve_precision("int8", "cpu", inference=True) == "int8"
    with pytest.raises(ValueError, match="inference only"):
        resolve_precision("int8", "cpu")
    with pytest.raises(ValueError, match="CPU only"):
        resolve_precision("int8", "cuda", inference=True)


# ---------------------------------------------------------------- weight layouts (oneDNN blocked vs plain)
needs_onednn = pytest.mark.skipif(not onednn_layout_works(), reason="this PyTorch has no working oneDNN linear")


@needs_onednn
def test_cpu_fast_path_prepares_the_onednn_layout_and_matches_the_plain_one(tiny_model):
    images, anchors = _images(3), tiny_model.text_anchors("widget")
    predictor = FastPredictor(tiny_model, precision="fp32")
    assert predictor.layout == "onednn" == weight_layout("cpu", "fp32")
    block = tiny_model.clip.visual.transformer.resblocks[0]
    prepared = predictor._prepared[id(block)]
    assert prepared.fc.activation == "gelu"  # the exact GELU runs inside the first MLP linear
    assert prepared.qkv.layout == "onednn" and prepared.qkv.weight is not block.attn.in_proj_weight  # blocked copy
    plain = FastPredictor(tiny_model, precision="fp32", layout="plain")
    with torch.no_grad():
        ref = tiny_model.predict(images, anchors, "industrial")
    for got, flat, want in zip(predictor(images, anchors, "industrial"), plain(images, anchors, "industrial"), ref):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got, flat, rtol=1e-4, atol=1e-4)


@needs_onednn
@pytest.mark.parametrize("mode, tolerance", [("fp32", 1e-5), ("bf16", 0.1)])
def test_onednn_block_matches_open_clip_block(tiny_model, mode, tolerance):
    block = tiny_model.clip.visual.transformer.resblocks[1]
    x = torch.randn(2, 65, 64)
    with torch.no_grad():
        torch.testing.assert_close(FrozenBlock(block, mode, "onednn", rows=65)(x), block(x), rtol=tolerance,
                                   atol=tolerance)


def test_quick_gelu_is_not_fused_and_runs_as_the_block_s_own_module():
    model = make_tiny_model(seed=2, quick_gelu=True).eval()
    block = model.clip.visual.transformer.resblocks[0]
    assert type(block.mlp.gelu).__name__ == "QuickGELU"
    x = torch.randn(2, 65, 64)
    for layout in ("plain", "onednn") if onednn_layout_works() else ("plain",):
        prepared = FrozenBlock(block, "fp32", layout)
        assert prepared.fc.activation is None
        with torch.no_grad():
            torch.testing.assert_close(prepared(x), block(x), rtol=1e-5, atol=1e-5)


def test_a_disagreeing_onednn_kernel_falls_back_to_the_plain_layout(monkeypatch, caplog):
    import aaclip_med.model.fast as fast

    monkeypatch.setattr(fast, "_onednn_linear", lambda x, packed, bias, activation: torch.zeros(3, 7, 48))
    fast.onednn_layout_works.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="aaclip_med.model.fast"):
            assert fast.weight_layout("cpu", "fp32") == "plain"
        assert not torch.backends.mkldnn.is_available() or "disagrees with F.linear" in caplog.text
    finally:
        fast.onednn_layout_works.cache_clear()
    assert fast.weight_layout("cpu", "int8") == "plain" and fast.weight_layout("meta", "fp32") == "plain"


def test_unknown_layout_and_activation_are_refused():
    weight = torch.randn(8, 4)
    with pytest.raises(ValueError, match="unknown weight layout 'blocked'"):
        FrozenLinear(weight, None, "fp32", layout="blocked")
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        FrozenLinear(weight, None, "fp32", activation="relu")
