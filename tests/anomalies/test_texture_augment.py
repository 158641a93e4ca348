"""DRAEM's texture operations: each one's effect on known inputs, three distinct per anomaly."""

from __future__ import annotations

import numpy as np
import pytest

from aaclip_med.anomalies.texture_augment import (
    OPERATIONS_PER_ANOMALY,
    TEXTURE_OPERATIONS,
    apply_operation,
    augment_texture,
)


def _ramp(channels: int = 1, size: int = 32) -> np.ndarray:
    """(C, size, size) values 0 ... 1 along the rows, one level per row."""
    return np.repeat(np.linspace(0.0, 1.0, size)[None, :, None], size, axis=2).repeat(channels, axis=0)


def test_the_ten_operations_of_draem_in_its_order():
    assert list(TEXTURE_OPERATIONS) == ["gamma", "brightness", "sharpness", "hue_saturation", "solarize", "posterize",
                                        "invert", "autocontrast", "equalize", "rotate"]
    assert OPERATIONS_PER_ANOMALY == 3


def test_three_distinct_operations_per_texture_and_every_one_drawn():
    seen = set()
    for seed in range(200):
        out, names = augment_texture(_ramp(3), np.random.default_rng(seed))
        assert len(set(names)) == 3 and out.shape == (3, 32, 32) and 0.0 <= out.min() and out.max() <= 1.0
        seen.update(names)
    assert seen == set(TEXTURE_OPERATIONS)


def test_invert_gamma_and_brightness_on_a_ramp():
    t = _ramp(2)
    np.testing.assert_allclose(apply_operation("invert", t, np.random.default_rng(0)), 1.0 - t)
    gamma = apply_operation("gamma", t, np.random.default_rng(0))
    exponents = [np.log(gamma[c, 16, 0]) / np.log(t[c, 16, 0]) for c in range(2)]  # per channel
    assert all(0.5 <= e <= 2.0 for e in exponents) and exponents[0] != exponents[1]
    bright = apply_operation("brightness", t, np.random.default_rng(0))
    mid = slice(8, 24)  # away from the clipped ends: out = mul * t + add
    slope = np.polyfit(t[0, mid, 0], bright[0, mid, 0], 1)
    assert 0.8 <= slope[0] <= 1.2 and abs(slope[1]) <= 30 / 255 + 1e-9


def test_solarize_inverts_above_its_threshold_or_leaves_the_texture():
    t = _ramp()
    outcomes = set()
    for seed in range(20):
        out = apply_operation("solarize", t, np.random.default_rng(seed))
        changed = ~np.isclose(out, t)
        if changed.any():  # inverted exactly above a threshold in [32, 128] / 255
            threshold = t[changed].min()
            assert 32 / 255 - 1 / 31 <= threshold <= 128 / 255 + 1 / 31
            np.testing.assert_allclose(out[changed], 1.0 - t[changed])
            assert not changed[t < threshold].any()
        outcomes.add(bool(changed.any()))
    assert outcomes == {True, False}  # DRAEM's p = 0.5


def test_posterize_keeps_1_to_8_bits_and_equalize_flattens_the_histogram():
    t = _ramp(1, 64) ** 3  # most values dark
    kept = set()
    for seed in range(12):
        out = apply_operation("posterize", t, np.random.default_rng(seed))
        bits = [k for k in range(1, 9)
                if np.allclose(out, np.floor(t * 255 / 2 ** (8 - k)) * 2 ** (8 - k) / 255)]
        assert bits, "not a posterized copy of the input"
        kept.add(bits[0])
    assert len(kept) > 2
    equalized = apply_operation("equalize", t, np.random.default_rng(0))
    assert abs(np.median(t) - 0.125) < 0.02 and np.median(equalized) > 0.35  # dark half spread upwards


def test_autocontrast_stretches_and_a_flat_texture_survives_sharpness_and_rotation_keeps_size():
    t = 0.3 + 0.4 * _ramp()
    out = apply_operation("autocontrast", t, np.random.default_rng(0))
    assert out.min() == 0.0 and out.max() == 1.0
    flat = np.full((1, 32, 32), 0.6)
    np.testing.assert_allclose(apply_operation("sharpness", flat, np.random.default_rng(0)), flat)
    rotated = apply_operation("rotate", flat, np.random.default_rng(3))
    assert rotated.shape == flat.shape and rotated[0, 16, 16] == pytest.approx(0.6)
    assert rotated[0, 0, 0] < 0.6  # a corner turned out of the texture: DRAEM's black fill


def test_hue_and_saturation_change_a_colour_texture_and_leave_a_grey_one():
    grey = _ramp(1)
    np.testing.assert_allclose(apply_operation("hue_saturation", grey, np.random.default_rng(0)), grey)
    colour = np.stack([_ramp()[0], 0.5 * _ramp()[0], np.full((32, 32), 0.2)])
    out = apply_operation("hue_saturation", colour, np.random.default_rng(0))
    assert not np.allclose(out, colour)
    np.testing.assert_allclose(out.max(axis=0), np.clip(colour, 0, 1).max(axis=0), atol=1e-6)  # HSV value kept
