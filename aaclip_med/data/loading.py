"""Load any supported source into a channel-first MetaTensor with its geometry.

Sources: a single DICOM file (MONAI `PydicomReader`), a DICOM series folder or a multi-frame
DICOM file (:class:`DicomSeriesReader`), NIfTI 2D/3D/4D (MONAI `NibabelReader`) and plain images
PNG/JPG/TIFF/BMP (MONAI `PILReader`). The result is (C, H, W) for 2D sources and (C, X, Y, Z) for
volumes, float32, with `affine` (RAS, mm) and `filename_or_obj` in its meta. DICOM arrays are
(rows, columns[, slices]) so slices read like the image a viewer shows.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable, Mapping
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor, NibabelReader, PILReader, PydicomReader
from monai.transforms import LoadImage, MapTransform, Transform
from monai.utils import TransformBackends
from PIL import Image

from .dicom import check_pixel_data, dicom_modality, read_dicom_header
from .errors import DataError
from .readers import DicomSeriesReader

__all__ = [
    "LoadSource", "LoadSourced", "load_image", "source_kind", "check_finite", "INTENSITY_MAX", "DICOM_MODALITY",
    "DEFAULT_MAX_PIXELS", "SUPPORTED", "check_pixel_limit",
]

logger = logging.getLogger(__name__)

# meta key holding the full-scale value of a plain image (255 for 8 bit, 65535 for 16 bit)
INTENSITY_MAX = "intensity_max"
# meta key holding the DICOM Modality attribute of a DICOM source ("CT", "MR", ...; None if absent)
DICOM_MODALITY = "dicom_modality"
SUPPORTED = "DICOM files or series folders, NIfTI (.nii, .nii.gz), PNG, JPEG, TIFF or BMP images"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_NIFTI_SUFFIXES = (".nii", ".nii.gz", ".img", ".hdr")
# PIL modes converted on read, so that every plain image is gray or RGB (alpha is dropped)
# Largest plain image decoded (width x height): 2**26 = 67 M pixels, e.g. 8192 x 8192, 0.8 GB as RGB
# float32. The model sees 518 x 518 anyway; larger files (a 20000 x 20000 scan of a slide) are
# refused from their header, before any pixel is decoded, so memory stays bounded.
DEFAULT_MAX_PIXELS = 2**26
_PIL_CONVERT = {"P": "RGB", "PA": "RGB", "RGBA": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LA": "L", "1": "L"}


def _to_gray_or_rgb(image: Image.Image) -> Image.Image:
    target = _PIL_CONVERT.get(image.mode)
    return image.convert(target) if target else image


def source_kind(path: str | PathLike) -> str:
    """Classify a source: 'dicom_series', 'dicom', 'dicom_multiframe', 'nifti' or 'image'.

    Raises:
        DataError: the path is missing, empty or of an unsupported type.
    """
    path = Path(path)
    if path.is_dir():
        return "dicom_series"
    if not path.exists():
        raise DataError(path, "file not found")
    if path.stat().st_size == 0:
        raise DataError(path, "the file is empty (0 bytes)")
    name = path.name.lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(_IMAGE_SUFFIXES):
        return "image"
    try:  # anything else must be DICOM (often without suffix)
        header = read_dicom_header(path, defer_pixels=True)
    except DataError as err:
        if "no 'DICM' marker" not in err.problem:
            raise
        raise DataError(path, f"is not a DICOM file (no 'DICM' marker) and not a NIfTI or image file by its name; "
                              f"inputs are {SUPPORTED}") from err
    if "PixelData" not in header and "FloatPixelData" not in header and "DoubleFloatPixelData" not in header:
        msg = "DICOM file without pixel data (a report, SR or presentation state, or a file cut short in transfer?)"
        raise DataError(path, msg)
    check_pixel_data(header, path)
    return "dicom_multiframe" if int(getattr(header, "NumberOfFrames", 1) or 1) > 1 else "dicom"


def _loader(kind: str, series_uid: str | None) -> LoadImage:
    readers = {
        "dicom_series": lambda: DicomSeriesReader(series_uid=series_uid),
        "dicom_multiframe": lambda: DicomSeriesReader(),
        "dicom": lambda: PydicomReader(swap_ij=False),
        "nifti": lambda: NibabelReader(),
        "image": lambda: PILReader(reverse_indexing=False, converter=_to_gray_or_rgb),
    }
    reader = readers[kind]()
    loader = LoadImage(reader=reader, image_only=True, ensure_channel_first=True, dtype=np.float32)
    # Given a reader, MONAI also registers its default readers and silently falls back to them when
    # ours raises: a folder the series reader refuses (uneven spacing, unknown series_uid) would be
    # stacked by PydicomReader with wrong geometry and the DataError lost. Use exactly this reader;
    # the kind was decided by content in source_kind, so MONAI's suffix test is skipped too.
    reader.verify_suffix = lambda filename: True
    loader.readers, loader.auto_select = [reader], True
    return loader


def check_finite(image: torch.Tensor, path: str | PathLike) -> None:
    """Raise a DataError when an image has a zero-size axis or NaN/Inf voxels."""
    if image.numel() == 0 or 0 in image.shape:
        raise DataError(path, f"has a zero-size axis (shape {tuple(image.shape)})")
    bad = int((~torch.isfinite(image)).sum())
    if bad:
        raise DataError(path, f"holds {bad} NaN/Inf voxel(s); fix or mask them before use")


def check_pixel_limit(path: Path, max_pixels: int | None) -> None:
    """Refuse a plain image above `max_pixels` from its header alone (nothing is decoded).

    Raises:
        DataError: the image has more pixels than `max_pixels` (None: no limit).
    """
    if max_pixels is None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError as err:  # PIL refuses > 2 x its own limit from the header
        raise DataError(path, f"image exceeds the limit of {max_pixels} pixels ({err}); downscale it first") from err
    except Exception:  # noqa: BLE001 - unreadable: the reader reports it with its own message
        return
    if width * height > max_pixels:
        msg = (f"image of {width} x {height} = {width * height} pixels exceeds the limit of {max_pixels} pixels; "
               "downscale it first or raise max_pixels")
        raise DataError(path, msg)


def _image_intensity_max(path: Path) -> float | None:
    with Image.open(path) as image:
        mode = _PIL_CONVERT.get(image.mode, image.mode)
    return 65535.0 if mode.startswith("I;16") or mode == "I" else 255.0 if mode in ("L", "RGB") else None


def load_image(
    path: str | PathLike, series_uid: str | None = None, volume_index: int = 0, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> MetaTensor:
    """Load one source as a channel-first float32 MetaTensor.

    Args:
        path: a DICOM file or series folder, a NIfTI file, or a PNG/JPG/TIFF/BMP image.
        series_uid: SeriesInstanceUID to read from a folder with several series (default: the
            series with the most slices).
        volume_index: the volume of a 4D NIfTI to keep (its 4th axis, e.g. time or b-value).
        max_pixels: largest plain image (width x height) decoded; None lifts the limit.

    Returns:
        (C, H, W) for 2D sources (C = 1 gray or 3 RGB), (1, X, Y, Z) for volumes; meta holds
        `affine` (RAS, mm), `filename_or_obj`, for plain images `intensity_max` and for DICOM
        sources `dicom_modality` (the Modality attribute, used by ``--modality auto``).

    Raises:
        DataError: the file is missing, empty, corrupt, without pixel data, or holds NaN/Inf or a
            zero-size axis, or is a plain image above `max_pixels`.
    """
    path = Path(path)
    kind = source_kind(path)
    if kind == "image":
        check_pixel_limit(path, max_pixels)
    try:
        image = _loader(kind, series_uid)(path)
    except DataError:
        raise
    except Exception as exc:  # readers raise anything from OSError to RuntimeError on corrupt files
        raise DataError(path, f"cannot be read as {kind} ({type(exc).__name__}: {exc})") from exc
    if kind == "nifti" and image.shape[0] > 1:  # 4D NIfTI: MONAI put the 4th axis first
        image = _select_volume(image, volume_index, path)
    if kind == "image":
        image.meta[INTENSITY_MAX] = _image_intensity_max(path)
    if kind.startswith("dicom"):
        image.meta[DICOM_MODALITY] = dicom_modality(path, series_uid)
    check_finite(image, path)
    logger.debug("loaded %s (%s) shape %s", path, kind, tuple(image.shape))
    return image


def _select_volume(image: MetaTensor, index: int, path: Path) -> MetaTensor:
    count = image.shape[0]
    if not -count <= index < count:
        raise DataError(path, f"has {count} volumes; volume_index {index} is out of range")
    logger.info("%s: 4D NIfTI, keeping volume %d of %d", path, index % count, count)
    return image[index % count : index % count + 1]


class LoadSource(Transform):
    """Array transform: a path becomes a channel-first MetaTensor (see :func:`load_image`).

    Args:
        series_uid: SeriesInstanceUID to read from multi-series folders.
        volume_index: the volume of a 4D NIfTI to keep.
        max_pixels: largest plain image decoded (see :func:`load_image`); None lifts the limit.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, series_uid: str | None = None, volume_index: int = 0, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        if not isinstance(volume_index, int):
            msg = f"volume_index must be an int, got {volume_index!r}"
            raise TypeError(msg)
        self.series_uid = series_uid
        self.volume_index = volume_index
        self.max_pixels = max_pixels

    def __call__(self, path: str | PathLike) -> MetaTensor:
        return load_image(path, series_uid=self.series_uid, volume_index=self.volume_index, max_pixels=self.max_pixels)


class LoadSourced(MapTransform):
    """Dictionary twin of :class:`LoadSource`: each key's path is replaced by the loaded image.

    Args:
        keys: keys holding paths.
        series_uid: see :class:`LoadSource`.
        volume_index: see :class:`LoadSource`.
        max_pixels: see :class:`LoadSource`.
        allow_missing_keys: skip keys that are absent.
    """

    backend = LoadSource.backend

    def __init__(
        self,
        keys: KeysCollection,
        series_uid: str | None = None,
        volume_index: int = 0,
        allow_missing_keys: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadSource(series_uid=series_uid, volume_index=volume_index, max_pixels=max_pixels)

    def __call__(self, data: Mapping[Hashable, str]) -> dict[Hashable, MetaTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d

