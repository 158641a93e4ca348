"""Cut a volume into 2D slices that remember where they came from, and put maps back.

Each slice is a MetaTensor (C, H, W) whose meta carries (docs/dev/interfaces.md):
`affine` of the slice (pixel (i, j) -> world RAS mm; the third column is the slice normal so
the matrix stays invertible), `source_affine`, `source_shape`, `slice_axis` (-1 for 2D sources),
`slice_index`, `case_id` and `filename_or_obj`. :func:`restack_slices` inverts the cut exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from aaclip_med.keys import Keys

from .errors import DataError

__all__ = ["SliceVolume", "SliceVolumed", "resolve_axis", "slice_affine", "restack_slices", "case_id_from_path"]

logger = logging.getLogger(__name__)

# world (RAS) row of the affine that each named plane is perpendicular to
_PLANE_NORMAL_ROW = {"sagittal": 0, "coronal": 1, "axial": 2}


def case_id_from_path(path: str | Path) -> str:
    """Case identifier from a source path: the file or folder name without its suffixes."""
    name = Path(str(path)).name
    for suffix in (".nii.gz", ".nii", ".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def resolve_axis(axis: int | str, affine: np.ndarray) -> int:
    """Spatial axis (0, 1 or 2) to slice along.

    Args:
        axis: 0/1/2, "acquisition" (axis 2: the stacking axis of a DICOM series and the slice
            axis of a NIfTI written from one), or "axial"/"coronal"/"sagittal" (the voxel axis
            closest to the S, A or R world axis of the RAS `affine`).
        affine: 4x4 voxel -> RAS (mm) affine of the volume.
    """
    if isinstance(axis, int) and axis in (0, 1, 2):
        return axis
    if axis == "acquisition":
        return 2
    if axis in _PLANE_NORMAL_ROW:
        columns = np.asarray(affine, float)[:3, :3]
        alignment = np.abs(columns[_PLANE_NORMAL_ROW[axis]]) / np.linalg.norm(columns, axis=0)
        return int(np.argmax(alignment))
    msg = f"axis must be 0, 1, 2, 'acquisition' or one of {sorted(_PLANE_NORMAL_ROW)}, got {axis!r}"
    raise ValueError(msg)


def slice_affine(affine: np.ndarray, axis: int, index: int) -> np.ndarray:
    """4x4 affine of slice `index` along `axis`: pixel (i, j, 0) -> the source voxel's world point."""
    affine = np.asarray(affine, float)
    keep = [a for a in range(3) if a != axis]
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2] = affine[:3, keep[0]], affine[:3, keep[1]], affine[:3, axis]
    out[:3, 3] = affine[:3, 3] + index * affine[:3, axis]
    return out


class SliceVolume(Transform):
    """Cut a (C, X, Y, Z) volume into (C, H, W) slices; a (C, H, W) image passes as one slice.

    Args:
        axis: see :func:`resolve_axis`; default "acquisition".
        start: first slice index (default 0).
        stop: one past the last slice index (default: all).
        stride: keep every `stride`-th slice.
        skip_empty: drop slices with fewer than `min_foreground` pixels above the volume minimum
            plus `background_tol` (air in CT, zero background in MRI).
        background_tol: tolerance above the minimum, in image units (HU for CT).
        min_foreground: pixels a slice needs to be kept when `skip_empty`.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        axis: int | str = "acquisition",
        start: int = 0,
        stop: int | None = None,
        stride: int = 1,
        skip_empty: bool = False,
        background_tol: float = 0.0,
        min_foreground: int = 1,
    ) -> None:
        if stride < 1 or start < 0 or (stop is not None and stop <= start):
            msg = f"need 0 <= start < stop and stride >= 1, got start={start}, stop={stop}, stride={stride}"
            raise ValueError(msg)
        resolve_axis(axis, np.eye(4))  # validates the name
        self.axis, self.start, self.stop, self.stride = axis, start, stop, stride
        self.skip_empty, self.background_tol, self.min_foreground = skip_empty, background_tol, min_foreground

    def select(self, volume: MetaTensor) -> tuple[int, list[int]]:
        """The axis and slice indices this transform keeps for `volume` (C, X, Y, Z)."""
        axis = resolve_axis(self.axis, _affine(volume))
        indices = list(range(self.start, min(self.stop or volume.shape[axis + 1], volume.shape[axis + 1]), self.stride))
        if self.skip_empty:
            threshold = float(volume.min()) + self.background_tol
            counts = (volume > threshold).any(0).sum(dim=[a for a in range(3) if a != axis])
            indices = [k for k in indices if int(counts[k]) >= self.min_foreground]
        return axis, indices

    def __call__(self, volume: MetaTensor, indices: Sequence[int] | None = None) -> list[MetaTensor]:
        """Args:
        volume: (C, X, Y, Z) or (C, H, W).
        indices: slices to cut (default: from :meth:`select`).
        """
        if volume.ndim == 3:
            return [_make_slice(volume, volume.as_tensor(), -1, 0)]
        if volume.ndim != 4:
            msg = f"expected (C, H, W) or (C, X, Y, Z), got shape {tuple(volume.shape)}"
            raise DataError(volume.meta.get("filename_or_obj"), msg)
        axis, selected = self.select(volume)
        indices = selected if indices is None else list(indices)
        count = volume.shape[axis + 1]
        for k in indices:
            if not 0 <= k < count:  # a negative index would silently count from the end
                msg = (f"slice_index {k} is out of range: the volume has {count} slices along its slice axis "
                       f"(0 to {count - 1})")
                raise DataError(volume.meta.get("filename_or_obj"), msg)
        return [_make_slice(volume, volume.as_tensor().select(axis + 1, k), axis, k) for k in indices]


def _affine(image: torch.Tensor) -> np.ndarray:
    affine = getattr(image, "affine", None)
    return np.eye(4) if affine is None else np.asarray(affine, float)


def _make_slice(volume: MetaTensor, data: torch.Tensor, axis: int, index: int) -> MetaTensor:
    meta = {k: v for k, v in volume.meta.items() if k not in ("affine", "spatial_shape")}
    source = volume.meta.get("filename_or_obj", "")
    source_affine = _affine(volume)
    meta.update(
        source_affine=source_affine,
        source_shape=tuple(int(s) for s in volume.shape[1:]),
        slice_axis=axis,
        slice_index=index,
        case_id=meta.get("case_id") or case_id_from_path(source),
        spatial_shape=np.asarray(data.shape[1:]),
    )
    meta["affine"] = torch.as_tensor(source_affine if axis < 0 else slice_affine(source_affine, axis, index))
    return MetaTensor(data.clone(), meta=meta)


class SliceVolumed(MapTransform):
    """Dictionary twin of :class:`SliceVolume`: one dictionary in, a list of slice dictionaries out.

    All keys are cut at the same indices, chosen on `source_key` (so empty image slices are
    skipped for the mask too). Each output holds `slice_index` and `case_id` as plain values.

    Args:
        keys: keys of volumes on the same grid (image, mask).
        source_key: key deciding which slices are kept (default: the first key).
        allow_missing_keys: skip keys that are absent (normal cases without a mask).
        kwargs: arguments of :class:`SliceVolume`.
    """

    backend = SliceVolume.backend

    def __init__(self, keys: KeysCollection, source_key: str | None = None, allow_missing_keys: bool = False, **kwargs) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key or self.keys[0]
        self.slicer = SliceVolume(**kwargs)

    def __call__(self, data: Mapping[Hashable, MetaTensor]) -> list[dict]:
        source = data[self.source_key]
        indices = self.slicer.select(source)[1] if source.ndim == 4 else [0]
        cut = {key: self.slicer(data[key], indices=indices) for key in self.key_iterator(dict(data))}
        out = []
        for n, index in enumerate(indices):
            d = dict(data)
            d.update({key: slices[n] for key, slices in cut.items()})
            d[Keys.SLICE_INDEX] = index
            d[Keys.CASE_ID] = cut[self.source_key][n].meta["case_id"]
            out.append(d)
        return out


def restack_slices(maps: Sequence[torch.Tensor | np.ndarray], metas: Sequence[Mapping]) -> MetaTensor:
    """Put per-slice 2D maps back on the grid of their source volume.

    Args:
        maps: one map per slice, (H, W) or (1, H, W), at the slice's native size.
        metas: the meta of each slice (as set by :class:`SliceVolume`), same order as `maps`.

    Returns:
        (1, X, Y, Z) float32 MetaTensor with the source affine (slices not given are 0), or
        (1, H, W) for a 2D source.

    Raises:
        DataError: maps of different sources, a map of the wrong size, or a slice given twice.
    """
    if not maps or len(maps) != len(metas):
        msg = f"need one meta per map and at least one map, got {len(maps)} maps and {len(metas)} metas"
        raise ValueError(msg)
    first = metas[0]
    shape, axis = tuple(int(s) for s in first["source_shape"]), int(first["slice_axis"])
    affine = np.asarray(first["source_affine"], float)
    volume = torch.zeros(shape, dtype=torch.float32)
    seen: set[int] = set()
    for item, meta in zip(maps, metas, strict=True):
        if tuple(int(s) for s in meta["source_shape"]) != shape or not np.allclose(meta["source_affine"], affine):
            raise DataError(meta.get("filename_or_obj"), "slices of different sources cannot be restacked together")
        index = int(meta["slice_index"])
        if index in seen:
            raise DataError(meta.get("filename_or_obj"), f"slice {index} is given twice")
        seen.add(index)
        _place(volume, torch.as_tensor(np.asarray(item), dtype=torch.float32), axis, index, meta)
    meta = {"filename_or_obj": first.get("filename_or_obj", ""), "case_id": first.get("case_id", ""), "affine": torch.as_tensor(affine)}
    return MetaTensor(volume[None], meta=meta)


def _place(volume: torch.Tensor, item: torch.Tensor, axis: int, index: int, meta: Mapping) -> None:
    item = item[0] if item.ndim == 3 else item  # (H, W)
    target = volume if axis < 0 else volume.select(axis, index)
    if tuple(item.shape) != tuple(target.shape):
        msg = f"map of slice {index} has shape {tuple(item.shape)}, the source slice is {tuple(target.shape)}"
        raise DataError(meta.get("filename_or_obj"), msg)
    target.copy_(item)
