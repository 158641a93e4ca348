"""Binary DICOM Segmentation (highdicom) of a thresholded anomaly map, referencing the source series.

The series says what it is: Series Description (method, threshold, the adapters' short hash),
Content Label, a segment labelled with the method and its algorithm identification (name, version,
threshold and adapters' hash as parameters).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aaclip_med.files import atomic_path
from aaclip_med.inference.writers._dicom_sources import (
    DEVICE,
    METHOD,
    check_plane_geometry,
    frames,
    import_highdicom,
    read_sources,
    series_description,
    software_version,
    weights_tag,
)

__all__ = ["write_segmentation"]

logger = logging.getLogger(__name__)


def _segment(hd, threshold: float | None, weights_sha256: str | None):
    from pydicom.sr.codedict import codes

    parameters = {"threshold": "unknown" if threshold is None else f"{threshold:g}",
                  "weights_sha256": weights_sha256 or "untrained adapters"}
    algorithm = hd.AlgorithmIdentificationSequence(
        name=METHOD, version=software_version(), family=codes.cid7162.ArtificialIntelligence, parameters=parameters,
    )
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=_mask_words(threshold)[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(255, 96, 0),  # orange: viewers otherwise warn and pick one
    )


def _mask_words(threshold: float | None) -> str:
    return f"{METHOD} anomaly, raw map >= {threshold:g}" if threshold is not None else f"{METHOD} anomaly"


def write_segmentation(mask: np.ndarray, source_files: Sequence[Path], path: str | os.PathLike, *,
                       threshold: float | None = None, weights_sha256: str | None = None) -> Path:
    """Write a binary SEG.

    Args:
        mask: (rows, columns[, slices]) bool, on the grid of the source series.
        source_files: the series' files in slice order.
        path: target ``.dcm`` file.
        threshold: the raw map value the mask was cut at (named in the descriptions).
        weights_sha256: the adapters' sha256 (its first 8 digits go in the description).
    """
    hd = import_highdicom()
    sources = read_sources(source_files)
    check_plane_geometry(sources, source_files, "SEG", required=False)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames(np.asarray(mask, dtype=bool), len(sources)).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(hd, threshold, weights_sha256)],
        series_instance_uid=hd.UID(),
        series_number=9901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        software_versions=software_version(),
        omit_empty_frames=False,
        series_description=series_description(
            "anomaly mask" + (f", raw map >= {threshold:g}" if threshold is not None else ""), weights_tag(weights_sha256)),
        content_label="ANOMALY_MASK",
        content_description=f"{_mask_words(threshold)} (zero-shot)"[:64],
        **DEVICE,
    )
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    logger.debug("wrote DICOM SEG %s", path)
    return Path(path)
