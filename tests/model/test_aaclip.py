"""Spec sections 1-5 on the tiny backbone (same code path as ViT-L-14-336)."""

import pytest
import torch
import torch.nn.functional as F

from aaclip_med.keys import Domain
from aaclip_med.model import AAClipConfig, resolve_config
from aaclip_med.model.smoothing import gaussian_blur
from aaclip_med.scoring import combine_image_score
from tests.conftest import make_tiny_model


def test_resolved_tiny_config_and_module_sizes(tiny_model):
    cfg = tiny_model.config
    assert cfg.image_size == 112 and cfg.levels == (1, 2, 3, 4)
    assert len(tiny_model.text_adapters) == cfg.text_adapter_layers == 3
    assert len(tiny_model.image_adapters) == cfg.image_adapter_layers == 2
    assert tiny_model.text_proj.linear.weight.shape == (32, 64)  # text width 64 -> embed 32
    assert [h.linear.weight.shape for h in tiny_model.seg_heads] == [(32, 64)] * 4
    assert tiny_model.det_head.linear.weight.shape == (32, 64)
    assert isinstance(tiny_model.text_proj.fc[1], torch.nn.LeakyReLU)
    assert isinstance(tiny_model.seg_heads[0].fc, torch.nn.Linear)  # head_activation off by default


def test_paper_backbone_resolves_to_spec_numbers():
    cfg = resolve_config(AAClipConfig())
    assert cfg.backbone == "ViT-L-14-336" and cfg.image_size == 518
    assert cfg.levels == (6, 12, 18, 24)
    assert (cfg.image_adapter_layers, cfg.text_adapter_layers) == (6, 3)
    assert (cfg.image_lambda, cfg.text_lambda) == (0.1, 0.1)
    assert cfg.quick_gelu is False and cfg.pretrained == "openai"


def test_other_depths_are_scaled():
    cfg = resolve_config(AAClipConfig(backbone="ViT-B-32"))  # 12 layers, no preset
    assert cfg.levels == (3, 6, 9, 12)
    assert cfg.image_adapter_layers == 3 and cfg.text_adapter_layers == 3
    with pytest.raises(ValueError, match="Unknown backbone 'ViT-Z-99'"):
        resolve_config(AAClipConfig(backbone="ViT-Z-99"))
    with pytest.raises(ValueError, match="levels"):
        resolve_config(AAClipConfig(backbone="aaclip-tiny", levels=(2, 9)))


def test_only_adapters_and_heads_are_trainable(tiny_model):
    trainable = {n for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert trainable and all(not n.startswith("clip.") for n in trainable)
    assert all(not p.requires_grad for p in tiny_model.clip.parameters())


def test_gradients_reach_only_adapters_and_heads():
    model = make_tiny_model(seed=3).train()
    images = torch.randn(2, 3, 112, 112)
    anchors = model.compute_text_anchors("widget")
    feats = model.encode_image(images)
    logits = model.patch_logits(feats.levels, anchors)
    loss = sum(lg.sum() for lg in logits) + model.global_logits(feats.global_feature, anchors).sum()
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    expected_prefixes = ("text_adapters", "text_proj", "image_adapters", "seg_heads", "det_head")
    assert grads and all(n.startswith(expected_prefixes) for n in grads)
    for prefix in expected_prefixes:
        assert any(n.startswith(prefix) for n in grads), prefix


def test_text_anchors_unit_norm_from_6_plus_10_sentences(tiny_model):
    anchors = tiny_model.text_anchors("dark bottle")
    assert anchors.shape == (tiny_model.embed_dim, 2)
    torch.testing.assert_close(anchors.norm(dim=0), torch.ones(2))
    normal, anomalous = tiny_model.prompts.sentences("dark bottle")
    assert (len(normal), len(anomalous)) == (6, 10)
    with torch.no_grad():
        f_n = F.normalize(tiny_model.encode_text(tiny_model.tokenize(normal)), dim=-1)
        f_a = F.normalize(tiny_model.encode_text(tiny_model.tokenize(anomalous)), dim=-1)
    torch.testing.assert_close(anchors[:, 0], F.normalize(f_n.mean(0), dim=0))
    torch.testing.assert_close(anchors[:, 1], F.normalize(f_a.mean(0), dim=0))
    assert tiny_model.text_anchors("dark bottle") is anchors  # cached per description


def test_text_path_uses_adapters_and_new_projection_not_clip_projection(tiny_model):
    tokens = tiny_model.tokenize(["a photo of a bottle."])
    with torch.no_grad():
        ours = tiny_model.encode_text(tokens)
        clip = tiny_model.clip
        x = clip.token_embedding(tokens) + clip.positional_embedding
        for i, block in enumerate(clip.transformer.resblocks):
            x = block(x, attn_mask=clip.attn_mask)
            if i < 3:
                a = tiny_model.text_adapters[i](x)
                x = 0.1 * a * x.norm(dim=-1, keepdim=True) / a.norm(dim=-1, keepdim=True) + 0.9 * x
        x = clip.ln_final(x)[0, tokens.argmax(-1)[0]]
        expected = F.leaky_relu(x @ tiny_model.text_proj.linear.weight.T, 0.01)
    torch.testing.assert_close(ours[0], expected)


def test_image_features_levels_and_global(tiny_model):
    images = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        feats = tiny_model.encode_image(images)
        taps = tiny_model._vision_tokens(images)
    assert len(feats.levels) == 4
    for level in feats.levels:
        assert level.shape == (2, 64, 32)  # 8 x 8 patches, class token dropped
        torch.testing.assert_close(level.norm(dim=-1), torch.ones(2, 64))
    patches = tiny_model.clip.visual.ln_post(taps[-1][:, 1:])
    det = F.normalize(patches @ tiny_model.det_head.linear.weight.T, dim=-1).mean(1)
    torch.testing.assert_close(feats.global_feature, det)
    assert (feats.global_feature.norm(dim=-1) < 1.0).all()  # a mean, not re-normalised


def test_map_formula_smoothing_and_scores_on_hand_made_features(tiny_model):
    """Per level (S_A + 1 - S_N)/2 with S = 100 f@T, blur, bilinear(align_corners) up, sum."""
    torch.manual_seed(5)
    levels = [F.normalize(torch.randn(1, 64, 32), dim=-1) for _ in range(4)]
    anchors = F.normalize(torch.randn(32, 2), dim=0)
    logits = tiny_model.patch_logits(levels, anchors)
    for domain, (ksize, sigma) in ((Domain.INDUSTRIAL, (7, 1.0)), (Domain.MEDICAL, (9, 1.5))):
        amap = tiny_model.anomaly_map(logits, domain, (112, 112))
        expected = torch.zeros(1, 1, 112, 112)
        for f in levels:
            s = 100.0 * f[0] @ anchors  # (64, 2)
            m = ((s[:, 1] + 1 - s[:, 0]) / 2).reshape(1, 1, 8, 8)
            m = gaussian_blur(m, ksize, sigma)
            expected += F.interpolate(m, size=(112, 112), mode="bilinear", align_corners=True)
        torch.testing.assert_close(amap, expected[:, 0])


def test_predict_scores_follow_domain_rule(tiny_model):
    images = torch.randn(3, 3, 112, 112)
    anchors = tiny_model.text_anchors("part")
    with torch.no_grad():
        ind = tiny_model.predict(images, anchors, Domain.INDUSTRIAL)
        med = tiny_model.predict(images, anchors, Domain.MEDICAL)
        det = tiny_model.encode_image(images).global_feature
    assert ind.anomaly_map.shape == (3, 112, 112)
    torch.testing.assert_close(ind.global_score, (det @ anchors[:, 1] + 1) / 2)
    torch.testing.assert_close(ind.map_max, ind.anomaly_map.flatten(1).max(1).values)
    torch.testing.assert_close(ind.image_score, 0.5 * ind.map_max + 0.5 * ind.global_score)
    torch.testing.assert_close(med.image_score, med.map_max)
    assert not torch.allclose(ind.anomaly_map, med.anomaly_map)  # different smoothing kernels
    with pytest.raises(ValueError, match="domain"):
        combine_image_score(ind.map_max, ind.global_score, "veterinary")


def test_per_image_anchors_equal_shared_anchors(tiny_model):
    images = torch.randn(2, 3, 112, 112)
    anchors = tiny_model.text_anchors("part")
    with torch.no_grad():
        shared = tiny_model.predict(images, anchors, Domain.MEDICAL)
        per_image = tiny_model.predict(images, anchors.expand(2, -1, -1), Domain.MEDICAL)
    torch.testing.assert_close(shared.anomaly_map, per_image.anomaly_map)
    torch.testing.assert_close(shared.global_score, per_image.global_score)


def test_surgery_features_use_value_value_attention_and_plain_embedding(tiny_model):
    images = torch.randn(2, 3, 112, 112)
    visual = tiny_model.clip.visual
    with torch.no_grad():
        feats = tiny_model.surgery_features(images)
        plain = F.normalize(tiny_model.clip.encode_image(images), dim=-1)
        # manual: all 4 tiny blocks are from the first level on, so all use v-v attention
        x = visual._embeds(images)
        block = visual.transformer.resblocks[0]
        h = block.ln_1(x)
        d = h.shape[-1]
        v = h @ block.attn.in_proj_weight[2 * d:].T + block.attn.in_proj_bias[2 * d:]
        v = v.view(2, 65, 2, 32).transpose(1, 2)
        att = torch.softmax(v @ v.transpose(-1, -2) * 32**-0.5, dim=-1) @ v
        x = x + block.attn.out_proj(att.transpose(1, 2).reshape(2, 65, d))
        x = x + block.mlp(block.ln_2(x))
        level1 = F.normalize(visual.ln_post(x[:, 1:]) @ visual.proj, dim=-1) + plain[:, None]
    assert len(feats) == 4 and feats[0].shape == (2, 64, 32)
    torch.testing.assert_close(feats[0], level1, rtol=1e-4, atol=1e-5)


def test_surgery_starts_at_first_level_block():
    from aaclip_med.model.surgery import surgery_block_forward

    model = make_tiny_model(seed=4, levels=(2, 3, 4))
    visual = model.clip.visual
    images = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        feats = model.surgery_features(images)
        plain = F.normalize(model.clip.encode_image(images), dim=-1)
        x = visual.transformer.resblocks[0](visual._embeds(images))  # block 1: standard attention
        x = surgery_block_forward(visual.transformer.resblocks[1], x)  # block 2: value-value
        expected = F.normalize(visual.ln_post(x[:, 1:]) @ visual.proj, dim=-1) + plain[:, None]
    assert len(feats) == 3
    torch.testing.assert_close(feats[0], expected)


def test_train_mode_keeps_clip_in_eval_and_clears_cache():
    model = make_tiny_model(seed=6)
    model.text_anchors("x")
    model.train()
    assert model.training and not model.clip.training
    assert model._anchor_cache == {}


def test_gradient_checkpointing_gives_same_gradients():
    model = make_tiny_model(seed=7).train()
    images = torch.randn(1, 3, 112, 112)
    anchors = torch.nn.functional.normalize(torch.randn(32, 2), dim=0)

    def grads():
        model.zero_grad()
        feats = model.encode_image(images)
        sum(level.sum() for level in model.patch_logits(feats.levels, anchors)).backward()
        return [p.grad.clone() for p in model.image_adapters.parameters()]

    plain = grads()
    model.set_grad_checkpointing(True)
    ckpt = grads()
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b)


def test_chunked_surgery_features_equal_whole_batch(tiny_model):
    images = torch.randn(5, 3, 112, 112)
    with torch.no_grad():
        whole = tiny_model.surgery_features(images)
        chunked = tiny_model.surgery_features(images, chunk_size=2)
    assert len(chunked) == len(whole)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_size"):
        tiny_model.surgery_features(images, chunk_size=0)
