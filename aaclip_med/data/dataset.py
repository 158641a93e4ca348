"""A MONAI Dataset over a manifest: records in, dictionaries with loaded image and mask out."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path

import torch
from monai.data import Dataset, MetaTensor
from monai.transforms import Compose, MapTransform

from aaclip_med.keys import Keys

from .cache import DEFAULT_CACHE_BYTES, VolumeCache
from .errors import DataError
from .loading import load_image
from .manifest import check_classes, read_manifest, validate_record
from .masks import read_mask
from .slicing import SliceVolume

__all__ = ["LoadSampled", "ManifestDataset", "check_mask"]


def check_mask(mask: torch.Tensor, image: torch.Tensor, mask_path: Path, image_path: Path) -> torch.Tensor:
    """Check that a (1, H, W) mask read by :func:`aaclip_med.data.masks.read_mask` fits its image.

    Raises:
        DataError: the mask's size differs from the image's.
    """
    if tuple(mask.shape[1:]) != tuple(image.shape[1:]):
        msg = f"mask size {tuple(mask.shape[1:])} differs from image size {tuple(image.shape[1:])} of {image_path}"
        raise DataError(mask_path, msg)
    return mask


class LoadSampled(MapTransform):
    """Load the image (and mask) of a manifest record; volumes are cut at `slice_index`.

    Adds `image` (C, H, W) and `mask` (1, H, W) {0, 1} (zeros when the record has no mask and
    `with_mask` is set); other record fields pass through. Masks follow the one mask rule of
    :mod:`aaclip_med.data.masks` (non-zero, or > 127 in JPEG files).

    Records with a slice index read their volume through a :class:`VolumeCache`, so the slice
    records of one case decode its volume once while it stays in the cache (see
    :mod:`aaclip_med.data.cache` for the budget and DataLoader workers).

    Args:
        root: dataset root the record paths are relative to.
        with_mask: always provide a mask (training and evaluation need one).
        cache: cache of decoded volumes; None makes one of ``DEFAULT_CACHE_BYTES`` (a cache of
            0 bytes turns caching off).
    """

    def __init__(self, root: str | PathLike, with_mask: bool = True, cache: VolumeCache | None = None) -> None:
        super().__init__([Keys.IMAGE_PATH])
        self.root = Path(root)
        self.with_mask = with_mask
        self.cache = cache if cache is not None else VolumeCache(DEFAULT_CACHE_BYTES)

    def _load(self, relative: str, slice_index: int | None) -> tuple[torch.Tensor, Path]:
        path = self.root / relative
        # Only sliced records use the cache: they keep a copied slice, never the cached volume.
        image = load_image(path) if slice_index is None else self.cache.get(path, load_image)
        if slice_index is not None and image.ndim == 4:
            image = SliceVolume()(image, indices=[int(slice_index)])[0]
        return image, path

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        slice_index = d.get(Keys.SLICE_INDEX)
        image, image_path = self._load(str(d[Keys.IMAGE_PATH]), slice_index)
        d[Keys.IMAGE] = image
        if d.get(Keys.MASK_PATH):
            mask_path = self.root / str(d[Keys.MASK_PATH])
            if not mask_path.exists():
                raise DataError(mask_path, f"mask file not found (mask_path of {image_path})")
            cached = None if slice_index is None else (lambda path: self.cache.get(path, load_image))
            mask = read_mask(mask_path, slice_index, load_volume=cached)
            d[Keys.MASK] = MetaTensor(check_mask(mask, image, mask_path, image_path), meta=dict(image.meta))
        elif self.with_mask:
            d[Keys.MASK] = MetaTensor(torch.zeros((1, *image.shape[1:])), meta=dict(image.meta))
        return d


class ManifestDataset(Dataset):
    """MONAI Dataset over a manifest.

    Args:
        manifest: a manifest file or a list of records.
        root: dataset root the paths are relative to.
        transform: applied after loading (e.g. :func:`aaclip_med.data.pipeline.inference_transforms`).
        known_classes: if given, every class must be in it (those with a text description).
        with_mask: always provide a mask, zeros for normal images.
        cache_bytes: budget of the decoded-volume cache per loading process (0: no cache).
    """

    def __init__(
        self,
        manifest: str | PathLike | Sequence[Mapping],
        root: str | PathLike,
        transform: Callable | None = None,
        known_classes: Iterable[str] | None = None,
        with_mask: bool = True,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if isinstance(manifest, (str, PathLike)):
            records, source = read_manifest(manifest), manifest
        else:
            records, source = [validate_record(r, f"record {n}") for n, r in enumerate(manifest, 1)], "manifest"
        if known_classes is not None:
            check_classes(records, known_classes, source)
        self.volume_cache = VolumeCache(cache_bytes)
        steps = [LoadSampled(root, with_mask, self.volume_cache)] + ([transform] if transform is not None else [])
        super().__init__(records, transform=Compose(steps))

    def _transform(self, index: int):
        try:
            return super()._transform(index)
        except RuntimeError as exc:
            # MONAI wraps errors of transforms in RuntimeError; surface the DataError that names the file
            cause = exc
            while cause is not None and not isinstance(cause, DataError):
                cause = cause.__cause__
            if cause is None:
                raise
            if "slice_index" in cause.problem:  # a line's own value: name the line (1-based, as an editor shows it)
                raise DataError(cause.path, f"{cause.problem} (manifest line {index + 1})") from exc
            raise cause from exc
