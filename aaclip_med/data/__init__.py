"""Data layer: loading with geometry, slicing/restacking, modality presets, manifests, builders.

See docs/dev/interfaces.md for the formats shared with the other subpackages.
"""

from .augment import RandColorJitter, RandColorJitterd, colour_transforms, geometric_transforms
from .builders import build_manifest, list_dataset_layouts
from .channels import (
    BinarizeMask,
    BinarizeMaskd,
    ClipNormalize,
    ClipNormalized,
    ToThreeChannels,
    ToThreeChannelsd,
)
from .dataset import LoadSampled, ManifestDataset
from .dicom import DicomSeries, find_dicom_series
from .dispatch import ModalityDispatch
from .errors import DataError
from .intensity import CTWindow, CTWindowd, MRINormalize, MRINormalized, ScaleToUnit, ScaleToUnitd
from .kshot import sample_k_shot
from .loading import LoadSource, LoadSourced, load_image
from .manifest import check_classes, read_manifest, validate_record, write_manifest
from .masks import read_mask, resize_mask
from .modality import get_modality, list_modalities, preset_transforms
from .pipeline import inference_transforms, training_transforms
from .readers import DicomSeriesReader
from .resize import ResizeImage, ResizeImaged, ResizeMask, ResizeMaskd
from .slicing import SliceVolume, SliceVolumed, restack_slices

__all__ = [
    "BinarizeMask", "BinarizeMaskd", "CTWindow", "CTWindowd", "ClipNormalize", "ClipNormalized",
    "DataError", "DicomSeries", "DicomSeriesReader", "LoadSampled", "LoadSource", "LoadSourced", "MRINormalize",
    "MRINormalized", "ManifestDataset", "ModalityDispatch", "RandColorJitter", "ResizeImage", "ResizeImaged", "ResizeMask", "ResizeMaskd", "RandColorJitterd", "ScaleToUnit", "ScaleToUnitd",
    "SliceVolume", "SliceVolumed", "ToThreeChannels", "ToThreeChannelsd", "colour_transforms",
    "geometric_transforms", "build_manifest", "check_classes", "find_dicom_series", "get_modality", "inference_transforms",
    "list_dataset_layouts", "list_modalities", "load_image", "preset_transforms", "read_manifest", "read_mask",
    "resize_mask",
    "restack_slices", "sample_k_shot", "training_transforms", "validate_record", "write_manifest",
]
