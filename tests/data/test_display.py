"""The one display rule: 8/16-bit images by their format's maximum, everything else by percentiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aaclip_med.data.display import display_image, display_range, to_rgb8
from aaclip_med.inference.writers.png import image_to_rgb8


def test_plain_images_are_divided_by_their_formats_maximum():
    rgb = np.arange(2 * 4 * 3, dtype=np.float32).reshape(3, 2, 4) * 10  # (C, H, W) as loaded
    shown = display_image(torch.as_tensor(rgb), intensity_max=255.0)
    assert shown.shape == (2, 4, 3) and shown.dtype == np.float32
    np.testing.assert_allclose(shown, np.moveaxis(rgb, 0, -1) / 255.0)  # a dark photo stays dark
    gray = display_image(np.full((1, 3, 3), 1000.0), intensity_max=65535.0)
    assert gray.shape == (3, 3) and gray.max() == pytest.approx(1000 / 65535)


def test_other_images_are_stretched_between_percentiles():
    hu = np.linspace(-1000, 1000, 10_000, dtype=np.float32).reshape(1, 100, 100)
    low, high = display_range(hu)
    assert (low, high) == pytest.approx(tuple(np.percentile(hu, [1, 99.5])))
    shown = display_image(hu)
    assert shown.shape == (100, 100) and shown.min() == 0.0 and shown.max() == 1.0
    np.testing.assert_allclose(shown, np.clip((hu[0] - low) / (high - low), 0, 1), atol=1e-6)
    # a volume's slice in the window of the whole volume: a dark slice stays dark
    dark = display_image(hu[0, :10], value_range=(low, high))
    assert dark.max() < 0.15
    assert display_image(np.zeros((4, 4))).max() == 0.0  # constant: a valid window, no NaN


def test_png_writer_uses_the_same_rule():
    image = torch.rand(1, 8, 6) * 300 - 100
    rgb = image_to_rgb8(image)
    assert rgb.shape == (8, 6, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, to_rgb8(display_image(image)))
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])  # gray repeated into three channels
    photo = torch.randint(0, 256, (3, 5, 7)).float()
    np.testing.assert_array_equal(image_to_rgb8(photo, 255.0), np.moveaxis(photo.numpy(), 0, -1).astype(np.uint8))
