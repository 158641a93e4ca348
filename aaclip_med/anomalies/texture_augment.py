"""DRAEM's augmentation of the anomaly texture: three of ten colour and geometry operations.

DRAEM (Zavrtanik et al., ICCV 2021) does not paste its texture source as it is: each anomaly
draws three distinct operations out of ten (gamma contrast, brightness, sharpness, hue and
saturation, solarize, posterize, invert, autocontrast, equalize, rotation) and applies them to
the texture first. That is what makes its region look foreign. Without it, a texture taken from
another image of the same kind (the only source a normal-only site has) fills the region with
more of the same texture, which neither a person nor a network can tell from the rest: a
linear probe on the tiny network's patch features scored 0.49 pixel AUROC on such regions
(issue 34).

The operations work on a texture scaled to [0, 1] (its own percentiles 1-99), the scale of
DRAEM's uint8 images divided by 255; the caller maps the result onto the image's intensity
range, so the same operations serve photos and CT slices. Parameter ranges are those of DRAEM's
``imgaug`` augmenters. On a single-channel texture the hue and saturation step changes nothing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["TEXTURE_OPERATIONS", "OPERATIONS_PER_ANOMALY", "augment_texture", "apply_operation"]

OPERATIONS_PER_ANOMALY = 3  # DRAEM: np.random.choice(10, 3, replace=False)
_GAMMA = (0.5, 2.0)  # iaa.GammaContrast((0.5, 2.0), per_channel=True)
_BRIGHTNESS_MUL, _BRIGHTNESS_ADD = (0.8, 1.2), (-30 / 255, 30 / 255)  # iaa.MultiplyAndAddToBrightness
_SHARPNESS = (0.0, 2.0)  # iaa.pillike.EnhanceSharpness(): factor 0 = PIL's SMOOTH filter, 1 = unchanged
_HUE_SATURATION = 50 / 255  # iaa.AddToHueAndSaturation((-50, 50), per_channel=True)
_SOLARIZE_PROB, _SOLARIZE_THRESHOLD = 0.5, (32 / 255, 128 / 255)  # iaa.Solarize(0.5, threshold=(32, 128))
_POSTERIZE_BITS = (1, 8)  # iaa.Posterize(): bits kept per channel
_AUTOCONTRAST_CUTOFF = (0.0, 20.0)  # iaa.pillike.Autocontrast(): percent cut off each end
_ROTATION = 45.0  # iaa.Affine(rotate=(-45, 45)), corners filled with 0
_SMOOTH = np.array([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0  # PIL ImageFilter.SMOOTH


def _gamma(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return t ** rng.uniform(*_GAMMA, size=(t.shape[0], 1, 1))


def _brightness(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return t * rng.uniform(*_BRIGHTNESS_MUL) + rng.uniform(*_BRIGHTNESS_ADD)


def _sharpness(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    smooth = np.stack([ndimage.correlate(c, _SMOOTH, mode="nearest") for c in t])
    return smooth + rng.uniform(*_SHARPNESS) * (t - smooth)


def _hue_saturation(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hue, saturation = rng.uniform(-_HUE_SATURATION, _HUE_SATURATION, size=2)  # drawn always: stable stream
    if t.shape[0] != 3:
        return t
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(np.clip(t, 0.0, 1.0).transpose(1, 2, 0))
    hsv[..., 0] = (hsv[..., 0] + hue) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] + saturation, 0.0, 1.0)
    return hsv2rgb(hsv).transpose(2, 0, 1)


def _solarize(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    apply, threshold = rng.random() < _SOLARIZE_PROB, rng.uniform(*_SOLARIZE_THRESHOLD)
    return np.where(t >= threshold, 1.0 - t, t) if apply else t


def _posterize(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    step = 2 ** (8 - int(rng.integers(_POSTERIZE_BITS[0], _POSTERIZE_BITS[1] + 1)))
    return np.floor(np.clip(t, 0.0, 1.0) * 255.0 / step) * step / 255.0


def _invert(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 1.0 - t


def _autocontrast(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cut = rng.uniform(*_AUTOCONTRAST_CUTOFF)
    out = []
    for channel in t:
        lo, hi = np.percentile(channel, [cut, 100.0 - cut])
        out.append((channel - lo) / (hi - lo) if hi > lo else channel)
    return np.stack(out)


def _equalize(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = []
    for channel in t:
        levels = np.clip(np.rint(channel * 255.0), 0, 255).astype(np.int64)
        cdf = np.cumsum(np.bincount(levels.ravel(), minlength=256)).astype(np.float64)
        lo = cdf[cdf > 0][0]
        out.append((cdf[levels] - lo) / (cdf[-1] - lo) if cdf[-1] > lo else channel)
    return np.stack(out)


def _rotate(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(-_ROTATION, _ROTATION)
    return ndimage.rotate(t, angle, axes=(2, 1), reshape=False, order=1, mode="constant", cval=0.0)


# DRAEM's ten augmenters, in its order
TEXTURE_OPERATIONS = {
    "gamma": _gamma,
    "brightness": _brightness,
    "sharpness": _sharpness,
    "hue_saturation": _hue_saturation,
    "solarize": _solarize,
    "posterize": _posterize,
    "invert": _invert,
    "autocontrast": _autocontrast,
    "equalize": _equalize,
    "rotate": _rotate,
}


def apply_operation(name: str, texture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One operation of :data:`TEXTURE_OPERATIONS` on a (C, H, W) texture in [0, 1]; result clipped to [0, 1]."""
    return np.clip(TEXTURE_OPERATIONS[name](texture, rng), 0.0, 1.0)


def augment_texture(texture: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[str, ...]]:
    """DRAEM's random augmentation of a (C, H, W) texture in [0, 1].

    Returns:
        (the texture after three distinct operations drawn uniformly, in [0, 1]; their names in
        the order applied).
    """
    names = list(TEXTURE_OPERATIONS)
    chosen = tuple(names[i] for i in rng.choice(len(names), OPERATIONS_PER_ANOMALY, replace=False))
    out = np.clip(texture, 0.0, 1.0)
    for name in chosen:
        out = apply_operation(name, out, rng)
    return out, chosen

