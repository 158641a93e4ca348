"""Float DICOM Parametric Map (highdicom) of the raw anomaly map, referencing the source series."""

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

__all__ = ["write_parametric_map"]

logger = logging.getLogger(__name__)


def write_parametric_map(score_map: np.ndarray, source_files: Sequence[Path], path: str | os.PathLike) -> Path:
    """Write the raw map as 32-bit float frames (identity real-world value mapping, no unit).

    Args:
        score_map: (rows, columns[, slices]) float, on the grid of the source series.
        source_files: the series' files in slice order.
        path: target ``.dcm`` file.
    """
    from pydicom.sr.codedict import codes

    hd = import_highdicom()
    sources = read_sources(source_files)
    pixels = frames(np.asarray(score_map, dtype=np.float32), len(sources))
    low, high = float(pixels.min()), float(pixels.max())
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="AACLIP", lut_explanation="raw AA-CLIP anomaly map", unit=codes.UCUM.NoUnits,
        value_range=(low, high), slope=1.0, intercept=0.0,
    )
    pmap = hd.pm.ParametricMap(
        source_images=sources,
        pixel_array=pixels,
        series_instance_uid=hd.UID(),
        series_number=9902,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        software_versions=software_version(),
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=(low + high) / 2.0, window_width=max(high - low, 1e-6))],
        **DEVICE,
    )
    # General Series Laterality is type 2C; present-but-empty is valid whether or not the anatomy is
    # paired (dciodvfy reports its absence as an error for Parametric Maps).
    if "Laterality" not in pmap:
        pmap.Laterality = ""
    with atomic_path(path) as tmp:
        pmap.save_as(tmp)
    logger.debug("wrote DICOM Parametric Map %s", path)
    return Path(path)
