"""Real images that ship inside installed packages, turned into the sample's clean sources.

- CT: the pixel data of pydicom's ``CT_small.dcm`` test file (128 x 128, 0.66 mm pixels, HU).
  Only its pixels and pixel spacing are used; no other attribute is copied.
- MR: nibabel's ``anatomical.nii`` test volume (33 x 41 x 25, 2 mm), upsampled in-plane so a
  viewer shows more than a handful of pixels.
- Retina: scikit-image's fundus photograph ``data.retina()``.
- Textures: scikit-image's ``brick``, ``grass`` and ``gravel`` (gray, 512 x 512), as RGB tiles.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from skimage.transform import resize

__all__ = ["CtSource", "MrSource", "ct_slices", "mr_volume", "retina_images", "texture_tiles", "TEXTURES"]

logger = logging.getLogger(__name__)

TEXTURES = ("brick", "grass", "gravel")


class CtSource(NamedTuple):
    hu: np.ndarray  # (slices, rows, columns) int16, Hounsfield units
    pixel_spacing: tuple[float, float]  # (row, column) spacing in mm
    slice_step: float  # distance between slice centres along the normal, mm


class MrSource(NamedTuple):
    data: np.ndarray  # (X, Y, Z) float32, arbitrary MR units
    affine: np.ndarray  # 4x4 voxel -> RAS mm


def _package_file(what: str, getter) -> Path:
    try:
        path = Path(getter())
    except Exception as err:  # noqa: BLE001 - each package signals a missing file differently
        msg = f"{what} is not available ({err}); reinstall the package that ships it (see docs/getting-started.md)."
        raise FileNotFoundError(msg) from err
    if not path.is_file():
        msg = f"{what} not found at {path}; reinstall the package that ships it."
        raise FileNotFoundError(msg)
    return path


def ct_slices(count: int) -> CtSource:
    """``count`` axial CT slices made from CT_small.dcm: each a slightly smaller copy of the last.

    The one real slice is shrunk a little per step about the image centre, as anatomy narrows
    along the body axis, so the series is not ``count`` identical images.
    """
    import pydicom
    from pydicom.data import get_testdata_file

    path = _package_file("pydicom test file CT_small.dcm", lambda: get_testdata_file("CT_small.dcm"))
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    centre = (np.array(hu.shape) - 1) / 2
    slices = []
    for k in range(count):
        scale = 1.0 + 0.025 * k  # > 1 samples further out, i.e. the anatomy shrinks
        offset = centre - scale * centre
        slices.append(ndimage.affine_transform(hu, np.eye(2) * scale, offset=offset, order=1, cval=-1024.0))
    spacing = tuple(float(v) for v in ds.PixelSpacing)
    return CtSource(np.rint(np.stack(slices)).astype(np.int16), spacing, float(ds.SliceThickness))


def mr_volume(slices: int, upsample: int = 4) -> MrSource:
    """The central ``slices`` slices (last axis) of nibabel's anatomical.nii, upsampled in-plane.

    The affine is rescaled with the data, so the volume covers the same physical space.
    """
    import nibabel as nib
    from nibabel.testing import data_path

    path = _package_file("nibabel test file anatomical.nii", lambda: Path(data_path) / "anatomical.nii")
    image = nib.load(path)
    data = np.asarray(image.dataobj, dtype=np.float64)
    first = max((data.shape[2] - slices) // 2, 0)
    data = data[:, :, first : first + slices]
    zoomed = ndimage.zoom(data, (upsample, upsample, 1), order=1, grid_mode=True, mode="nearest")
    affine = image.affine.copy()
    affine[:3, 3] = affine[:3, :3] @ [(1 / upsample - 1) / 2, (1 / upsample - 1) / 2, first] + affine[:3, 3]
    affine[:3, :2] /= upsample
    return MrSource(zoomed.astype(np.float32), affine)


def retina_images(count: int, size: int) -> list[np.ndarray]:
    """``count`` (size, size, 3) uint8 views of the fundus photo: the whole eye, flipped and rotated."""
    from skimage import data

    photo = resize(data.retina(), (size, size), order=1, anti_aliasing=True, preserve_range=True)
    views = [np.rot90(photo, k) for k in range(4)] + [np.rot90(photo[:, ::-1], k) for k in range(4)]
    return [np.ascontiguousarray(views[i % len(views)]).round().astype(np.uint8) for i in range(count)]


def texture_tiles(name: str, count: int, size: int) -> list[np.ndarray]:
    """``count`` (size, size, 3) uint8 tiles of a scikit-image texture, cut from different places."""
    from skimage import data

    if name not in TEXTURES:
        msg = f"unknown texture {name!r}; choose one of {list(TEXTURES)}"
        raise ValueError(msg)
    gray = getattr(data, name)()
    half = gray.shape[0] // 2
    corners = [(0, 0), (0, half), (half, 0), (half, half), (half // 2, half // 2), (half // 2, 0), (0, half // 2)]
    tiles = []
    for i in range(count):
        y, x = corners[i % len(corners)]
        tile = gray[y : y + half, x : x + half]
        tile = resize(tile, (size, size), order=1, anti_aliasing=True, preserve_range=True)
        tile = np.rot90(tile, i // len(corners))
        tiles.append(np.repeat(tile.round().astype(np.uint8)[..., None], 3, axis=-1))
    return tiles
