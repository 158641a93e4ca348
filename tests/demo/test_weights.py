"""Choice of the demo's CLIP weights: argument, environment, cache, download, random fallback."""

from __future__ import annotations

import pytest

from aaclip_med.demo import weights
from aaclip_med.demo.weights import ENV_WEIGHTS, choose_weights


def test_argument_wins(tmp_path):
    choice = choose_weights("ViT-B-16", "random", environ={ENV_WEIGHTS: str(tmp_path)})
    assert choice.random and choice.source == "argument"


def test_environment_file(tmp_path):
    path = tmp_path / "ViT-B-16.pt"
    path.write_bytes(b"x")
    choice = choose_weights("ViT-B-16", environ={ENV_WEIGHTS: str(path)})
    assert choice.pretrained == str(path) and not choice.random


def test_environment_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=ENV_WEIGHTS):
        choose_weights("ViT-B-16", environ={ENV_WEIGHTS: str(tmp_path / "missing.pt")})


def test_cache_then_download_then_random(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "cached_weights", lambda backbone: tmp_path / "cached.bin")
    assert choose_weights("ViT-B-16", environ={}).source == "cache"
    monkeypatch.setattr(weights, "cached_weights", lambda backbone: None)
    monkeypatch.setattr(weights, "_online", lambda: True)
    assert choose_weights("ViT-B-16", environ={}).pretrained == "openai"
    offline = choose_weights("ViT-B-16", offline=True, environ={})
    assert offline.random and "offline" in offline.reason
    monkeypatch.setattr(weights, "_online", lambda: False)
    assert choose_weights("ViT-B-16", environ={}).source == "random-fallback"
