"""Shared fixtures: a tiny AA-CLIP (random weights, same code path as ViT-L) and quiet warnings."""

from __future__ import annotations

import warnings

import pytest
import torch

from aaclip_med.model import AAClipConfig, build_aaclip

TINY = "aaclip-tiny"


def make_tiny_model(seed: int = 0, **overrides):
    """A freshly built tiny AA-CLIP; the seed fixes both the random CLIP and the adapters."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the loud "random weights" warning
        return build_aaclip(AAClipConfig(backbone=TINY, pretrained="random", **overrides))


@pytest.fixture(scope="session")
def tiny_model():
    """Session-wide tiny model in eval mode; tests must not modify it (use make_tiny_model)."""
    return make_tiny_model().eval()


@pytest.fixture(scope="session", autouse=True)
def graph_cache(tmp_path_factory):
    """``--engine auto``'s graph cache in a temporary folder: no test writes to the user's ~/.cache (child
    processes of the tests inherit it)."""
    import os

    folder = tmp_path_factory.mktemp("graph_cache")
    # ... and ``auto`` pinned to torch, so every run computes the same maps whatever this machine's rule
    # picks (tests/export/test_auto.py lifts the pin to test the rule)
    settings = {"AACLIP_MED_CACHE": str(folder), "AACLIP_MED_ENGINE": "torch"}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    yield folder
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
