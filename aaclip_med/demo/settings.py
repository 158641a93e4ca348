"""The demo's and the sample's settings that the CLI offers (standard library only: ``aaclip-med demo
--help`` and ``aaclip-med sample --help`` answer without numpy, torch or open_clip)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEMO_BACKBONE", "DEMO_IMAGE_SIZE", "SampleSize", "SIZES"]

# ViT-B/16 at its native 224 px: the paper's ViT-L/14-336 at 518 px costs about 20x the compute per
# image and would not finish the demo on 2 CPU cores in minutes; pass --backbone/--image-size for it.
DEMO_BACKBONE = "ViT-B-16"
DEMO_IMAGE_SIZE = 224


@dataclass(frozen=True)
class SampleSize:
    """How much of each source goes into the sample."""

    ct_slices: int
    mr_slices: int
    retina_count: int  # half normal, half anomalous
    retina_size: int  # side in pixels
    texture_count: int  # per texture class, half normal, half anomalous
    texture_size: int


SIZES = {
    "full": SampleSize(ct_slices=8, mr_slices=12, retina_count=6, retina_size=256, texture_count=6, texture_size=256),
    "small": SampleSize(ct_slices=4, mr_slices=4, retina_count=2, retina_size=128, texture_count=2, texture_size=128),
}
