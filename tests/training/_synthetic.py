"""Synthetic training data for the tiny model: textured images with pasted defects and masks."""

from __future__ import annotations

import math

import torch

from aaclip_med.keys import Keys

DESCRIPTIONS = {"widget": "textured widget surface", "tile": "ceramic tile"}


def make_samples(count: int, size: int = 112, seed: int = 0, classes: tuple[str, ...] = ("widget",)) -> list[dict]:
    """``count`` samples, every other one anomalous with a bright square defect and its mask.

    Images are a sinusoidal texture plus noise, roughly zero-mean like CLIP-normalised inputs.
    """
    gen = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    samples = []
    for index in range(count):
        freq = 2 * math.pi / (6 + 4 * torch.rand(1, generator=gen).item())
        texture = torch.sin(xs * freq) * torch.cos(ys * freq * 0.7)
        image = texture.expand(3, size, size) + 0.2 * torch.randn(3, size, size, generator=gen)
        mask = torch.zeros(1, size, size)
        label = float(index % 2)
        if label:
            side = int(torch.randint(size // 6, size // 3, (1,), generator=gen))
            top, left = (int(v) for v in torch.randint(0, size - side, (2,), generator=gen))
            mask[:, top : top + side, left : left + side] = 1.0
            image = torch.where(mask.bool(), torch.full_like(image, 2.0), image)
        samples.append({Keys.IMAGE: image.float(), Keys.MASK: mask, Keys.LABEL: label,
                        Keys.CLASS_NAME: classes[index % len(classes)]})
    return samples
