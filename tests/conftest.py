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
