"""The patch-size rule (read from open_clip's JSON, no torch) and where it is enforced."""

from __future__ import annotations

import pytest

from aaclip_med.model.config import AAClipConfig, check_image_size, patch_size


def test_patch_size_of_open_clip_and_package_backbones():
    assert patch_size("ViT-B-16") == 16 and patch_size("ViT-L-14-336") == 14
    assert patch_size("aaclip-tiny") == 14  # the package's own architecture
    assert patch_size("no-such-backbone") is None


def test_check_image_size_names_the_nearest_sizes():
    check_image_size(518, "ViT-L-14-336")
    check_image_size(333, "no-such-backbone")  # unknown: left to the backbone loader
    with pytest.raises(ValueError, match="image size 230 is not a multiple of the patch size 16 of ViT-B-16; use 224 or 240"):
        check_image_size(230, "ViT-B-16")
    with pytest.raises(ValueError, match="of aaclip-tiny; use 14$"):
        check_image_size(5, "aaclip-tiny")
    with pytest.raises(ValueError, match="positive number of pixels, got 0"):
        check_image_size(0, "aaclip-tiny")


def test_resolving_a_config_applies_the_rule():
    from aaclip_med.model import resolve_config

    assert resolve_config(AAClipConfig(backbone="aaclip-tiny", image_size=42)).image_size == 42
    with pytest.raises(ValueError, match="image size 50 is not a multiple of the patch size 14 of aaclip-tiny"):
        resolve_config(AAClipConfig(backbone="aaclip-tiny", image_size=50))
