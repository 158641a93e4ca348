import warnings

import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from aaclip_med.model import AAClipConfig, BackboneWeightsError, build_aaclip, build_clip, resolve_config
from aaclip_med.model.backbone import load_backbone_weights
from tests.conftest import make_tiny_model
from tests.model._weights import CodeRunningPayload, save_torchscript_archive


@pytest.fixture(scope="module")
def tiny_state():
    return {k: v.clone() for k, v in make_tiny_model(seed=11).clip.state_dict().items()}


@pytest.mark.parametrize("fmt", ["bin", "safetensors", "torchscript", "wrapped"])
def test_local_weight_files_load(tmp_path, tiny_state, fmt):
    path = tmp_path / f"weights.{fmt}"
    if fmt == "bin":
        torch.save(tiny_state, path)
    elif fmt == "safetensors":
        path = tmp_path / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in tiny_state.items()}, str(path))
    elif fmt == "torchscript":
        path = tmp_path / "ViT-tiny.pt"
        save_torchscript_archive(tiny_state, path)
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in tiny_state.items()}}, path)
    clip = build_clip(resolve_config(AAClipConfig(backbone="aaclip-tiny", pretrained=str(path))))
    loaded = clip.state_dict()
    for key, value in tiny_state.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
    assert all(not p.requires_grad for p in clip.parameters())


def test_positional_embedding_resized_bicubic_antialias_class_token_kept(tmp_path):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = build_aaclip(AAClipConfig(backbone="aaclip-tiny", image_size=56))  # 4 x 4 grid
    state = small.clip.state_dict()
    torch.save(state, tmp_path / "small.bin")
    big = build_clip(resolve_config(AAClipConfig(backbone="aaclip-tiny", pretrained=str(tmp_path / "small.bin"))))
    old = state["visual.positional_embedding"]
    grid = old[1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(8, 8), mode="bicubic", antialias=True, align_corners=False)
    expected = torch.cat([old[:1], grid.permute(0, 2, 3, 1).reshape(64, -1)])
    torch.testing.assert_close(big.visual.positional_embedding, expected)


def test_offline_without_file_names_the_file_to_get(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(open_clip, "download_pretrained", no_network)
    with pytest.raises(BackboneWeightsError) as info:
        build_clip(resolve_config(AAClipConfig()))
    message = str(info.value)
    assert "ViT-L-14-336px.pt" in message and "openaipublic" in message and "--backbone-weights" in message


def test_unknown_tag_lists_tags():
    with pytest.raises(BackboneWeightsError, match="neither a local file nor an open_clip tag.*openai"):
        build_clip(resolve_config(AAClipConfig(pretrained="no-such-tag")))


def test_corrupt_and_empty_weight_files_name_the_file(tmp_path):
    model = make_tiny_model(seed=0).clip
    bad = tmp_path / "broken.bin"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(BackboneWeightsError, match="Could not read backbone weights .*broken.bin"):
        load_backbone_weights(model, bad)
    with pytest.raises(BackboneWeightsError, match="does not exist"):
        load_backbone_weights(model, tmp_path / "missing.pt")


def test_code_running_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.bin"
    torch.save({"visual.proj": CodeRunningPayload()}, path)
    with pytest.raises(BackboneWeightsError, match="evil.bin"):
        load_backbone_weights(make_tiny_model(seed=0).clip, path)


def test_weights_of_another_architecture_are_rejected(tmp_path, tiny_state):
    state = dict(tiny_state)
    state.pop("visual.proj")
    torch.save(state, tmp_path / "partial.bin")
    with pytest.raises(BackboneWeightsError, match="partial.bin.*visual.proj"):
        build_clip(resolve_config(AAClipConfig(backbone="aaclip-tiny", pretrained=str(tmp_path / "partial.bin"))))


def test_quick_gelu_option():
    default = make_tiny_model(seed=0)
    quick = make_tiny_model(seed=0, quick_gelu=True)
    act = default.clip.visual.transformer.resblocks[0].mlp.gelu
    assert type(act) is torch.nn.GELU
    assert type(quick.clip.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"


def test_random_backbone_is_reproducible_and_leaves_caller_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_clip(resolve_config(AAClipConfig(backbone="aaclip-tiny", pretrained="random")))
    assert torch.equal(torch.rand(1), expected_next)  # the caller's RNG stream is untouched
    torch.manual_seed(999)
    b = build_clip(resolve_config(AAClipConfig(backbone="aaclip-tiny", pretrained="random")))
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), key


@pytest.fixture
def empty_caches(monkeypatch, tmp_path):
    """No Hugging Face cache and no open_clip URL cache; any download attempt fails the test."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # open_clip's URL cache is ~/.cache/clip
    monkeypatch.setattr(open_clip, "download_pretrained", lambda *a, **k: pytest.fail("a download was tried"))
    return tmp_path


def test_offline_setting_refuses_at_once_without_a_download(monkeypatch, empty_caches):
    import socket

    # "at once": refused before any connection (the hub client would retry for a minute) and before
    # the 400M-parameter network is built
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("a connection was tried"))
    monkeypatch.setattr(open_clip, "create_model", lambda *a, **k: pytest.fail("the network was built first"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneWeightsError) as info:
        build_clip(resolve_config(AAClipConfig()))
    message = str(info.value)
    assert "ViT-L-14-336/openai: no local weights file and none in the open_clip or Hugging Face cache" in message
    assert "HF_HUB_OFFLINE is set" in message and "ViT-L-14-336px.pt" in message and "--backbone-weights" in message


def test_unreachable_hub_refuses_at_once_without_a_download(monkeypatch, empty_caches):
    import socket

    def unreachable(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(BackboneWeightsError, match=r"huggingface.co cannot be reached \(Network is unreachable; offline\?\)"):
        build_clip(resolve_config(AAClipConfig()))


def test_cached_tag_is_used_without_the_network(monkeypatch, empty_caches):
    from aaclip_med.model.backbone import _download_tag

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = empty_caches / "hf" / "models--timm--vit_large_patch14_clip_336.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    weights = repo / "snapshots" / "abc123" / "open_clip_pytorch_model.bin"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    assert _download_tag(resolve_config(AAClipConfig())) == str(weights)


def test_online_path_still_downloads(monkeypatch, empty_caches):
    import socket

    from aaclip_med.model.backbone import _download_tag

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: open(__file__, "rb"))  # reachable
    monkeypatch.setattr(open_clip, "download_pretrained", lambda cfg, **k: "/downloaded/weights.bin")
    assert _download_tag(resolve_config(AAClipConfig())) == "/downloaded/weights.bin"


@pytest.mark.parametrize("tag", ["none", "Random", "random-init", ""])
def test_every_random_weights_tag_builds_the_seeded_network_without_a_download(tag, empty_caches):
    reference = build_clip(resolve_config(AAClipConfig(backbone="aaclip-tiny", pretrained="random")))
    other = build_clip(resolve_config(AAClipConfig(backbone="aaclip-tiny", pretrained=tag)))
    for (key, x), y in zip(reference.state_dict().items(), other.state_dict().values()):
        assert torch.equal(x, y), key
