import json

import pytest
import torch

from aaclip_med.keys import Domain
from aaclip_med.model import (
    AAClipConfig,
    CheckpointError,
    load_adapters,
    load_public_checkpoints,
    read_adapter_file,
    save_adapters,
)
from tests.conftest import make_tiny_model
from tests.model._weights import CodeRunningPayload


def _perturbed_model(seed=21, **overrides):
    model = make_tiny_model(seed=seed, **overrides)
    with torch.no_grad():  # make adapters differ from a fresh init so a failed load is visible
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _outputs(model, images):
    with torch.no_grad():
        anchors = model.compute_text_anchors("metal plate")
        return anchors, model.predict(images, anchors, Domain.INDUSTRIAL)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = _perturbed_model()
    path = save_adapters(model, tmp_path / "adapters", extra={"note": "test"})
    assert path.name == "adapters.safetensors" and path.with_suffix(".json").is_file()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["config"]["backbone"] == "aaclip-tiny" and meta["config"]["levels"] == [1, 2, 3, 4]
    images = torch.randn(2, 3, 112, 112)
    torch.manual_seed(21)  # rebuild the same random CLIP as the saved model's
    restored = load_adapters(path)
    restored.clip.load_state_dict(model.clip.state_dict())
    a0, p0 = _outputs(model, images)
    a1, p1 = _outputs(restored.eval(), images)
    assert torch.equal(a0, a1)
    for x, y in zip(p0, p1):
        assert torch.equal(x, y)
    assert restored.checkpoint_extra == {"note": "test"}


def test_header_alone_is_enough(tmp_path):
    model = _perturbed_model()
    path = save_adapters(model, tmp_path / "a.safetensors")
    path.with_suffix(".json").unlink()
    meta, state = read_adapter_file(path)
    assert AAClipConfig.from_dict(meta["config"]) == model.config
    assert set(state) == set(model.adapter_state_dict())


def test_corrupt_or_mismatched_checkpoints_raise_naming_the_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        read_adapter_file(bad)
    model = _perturbed_model()
    path = save_adapters(model, tmp_path / "ok.safetensors")
    other = make_tiny_model(seed=0, head_activation=True)
    with pytest.raises(CheckpointError, match="ok.safetensors.*missing"):
        load_adapters(path, model=other)


def _write_public_format(model, folder, relu_heads=False):
    """Write ``model``'s adapters the way the authors' training code saves them."""
    text = {f"{i}.fc.0.weight": a.fc[0].weight for i, a in enumerate(model.text_adapters)}
    text[f"{len(model.text_adapters)}.fc.0.weight"] = model.text_proj.linear.weight
    image = {f"layer_adapters.{i}.fc.0.weight": a.fc[0].weight for i, a in enumerate(model.image_adapters)}
    head_key = "fc.0.weight" if relu_heads else "fc.weight"
    image.update({f"seg_proj.{j}.{head_key}": h.linear.weight for j, h in enumerate(model.seg_heads)})
    image[f"det_proj.{head_key}"] = model.det_head.linear.weight  # their --relu: LeakyReLU after det_proj too
    torch.save({"text_adapter": {k: v.detach().clone() for k, v in text.items()}, "epoch": 5},
               folder / "text_adapter.pth")
    torch.save({"image_adapter": {k: v.detach().clone() for k, v in image.items()}, "epoch": 15},
               folder / "image_adapter.pth")


@pytest.mark.parametrize("relu_heads", [False, True])
def test_public_checkpoints_import_to_same_outputs(tmp_path, relu_heads):
    model = _perturbed_model(head_activation=relu_heads, det_head_activation=relu_heads)
    _write_public_format(model, tmp_path, relu_heads)
    torch.manual_seed(21)
    imported = load_public_checkpoints(
        tmp_path / "text_adapter.pth",
        tmp_path / "image_adapter.pth",
        AAClipConfig(backbone="aaclip-tiny", pretrained="random"),
    )
    assert imported.config.head_activation is relu_heads
    assert imported.config.det_head_activation is relu_heads
    imported.clip.load_state_dict(model.clip.state_dict())
    images = torch.randn(1, 3, 112, 112)
    a0, p0 = _outputs(model, images)
    a1, p1 = _outputs(imported.eval(), images)
    torch.testing.assert_close(a0, a1, rtol=0, atol=0)
    for x, y in zip(p0, p1):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_public_import_refuses_code_running_pickle(tmp_path):
    torch.save({"text_adapter": {"0.fc.0.weight": CodeRunningPayload()}}, tmp_path / "text_adapter.pth")
    torch.save({"image_adapter": {}}, tmp_path / "image_adapter.pth")
    with pytest.raises(CheckpointError, match="Refusing to load .*text_adapter.pth"):
        load_public_checkpoints(tmp_path / "text_adapter.pth", tmp_path / "image_adapter.pth",
                                AAClipConfig(backbone="aaclip-tiny", pretrained="random"))


def test_relu_det_head_applies_leaky_relu_before_normalising():
    # the public --relu: det = mean_patches(normalise(LeakyReLU(det_proj(ln_post(tokens_24)))))
    plain = _perturbed_model(seed=4)
    relu = make_tiny_model(seed=4, det_head_activation=True)
    relu.load_adapter_state_dict({k.replace("det_head.fc.", "det_head.fc.0."): v
                                  for k, v in plain.adapter_state_dict().items()})
    taps = [torch.randn(2, 17, plain.clip.visual.conv1.out_channels) for _ in plain.config.levels]
    with torch.no_grad():
        patches = plain.clip.visual.ln_post(taps[-1][:, 1:])
        expected = torch.nn.functional.normalize(
            torch.nn.functional.leaky_relu(patches @ plain.det_head.linear.weight.T, 0.01), dim=-1).mean(1)
        got = relu.features_from_tokens(taps).global_feature
        without = plain.features_from_tokens(taps).global_feature
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert float((without - expected).abs().max()) > 1e-3
