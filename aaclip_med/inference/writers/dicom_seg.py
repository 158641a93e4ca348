"""Binary DICOM Segmentation (highdicom) of a thresholded anomaly map, referencing the source series."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aaclip_med.files import atomic_path
from aaclip_med.inference.writers._dicom_sources import (
    DEVICE,
    frames,
    import_highdicom,
    read_sources,
    software_version,
)

__all__ = ["write_segmentation"]

logger = logging.getLogger(__name__)


def _segment(hd):
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name="AA-CLIP", version=software_version(), family=codes.cid7162.ArtificialIntelligence
    )
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="anomaly",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )


def write_segmentation(mask: np.ndarray, source_files: Sequence[Path], path: str | os.PathLike) -> Path:
    """Write a binary SEG.

    Args:
        mask: (rows, columns[, slices]) bool, on the grid of the source series.
        source_files: the series' files in slice order.
        path: target ``.dcm`` file.
    """
    hd = import_highdicom()
    sources = read_sources(source_files)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames(np.asarray(mask, dtype=bool), len(sources)).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(hd)],
        series_instance_uid=hd.UID(),
        series_number=9901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        software_versions=software_version(),
        omit_empty_frames=False,
        **DEVICE,
    )
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    logger.debug("wrote DICOM SEG %s", path)
    return Path(path)
