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

__all__ = ["write_parametric_map", "display_window"]

logger = logging.getLogger(__name__)

# Largest window width written. The window is a display default only (the real-world value mapping
# carries the full range); validators and viewers convert Window Width to a 64-bit integer, which
# overflows above about 9.2e18 and turns the width negative.
MAX_WINDOW_WIDTH = 1e18


def display_window(low: float, high: float) -> tuple[float, float]:
    """(centre, width) of the default display window of a map with values in ``[low, high]``.

    The window spans the range exactly. It is written with VOI LUT Function LINEAR_EXACT, the
    function the standard provides for widths below 1 (maps are often within [0, 1]) and which maps
    ``centre +- width / 2`` onto the ends of the display range with no half-pixel offset. A
    constant map gets width 1 around its value; a range wider than :data:`MAX_WINDOW_WIDTH` gets
    that width (logged).
    """
    width = high - low
    if not width > 0:
        return low, 1.0
    if width > MAX_WINDOW_WIDTH:
        logger.warning("map range %.3g exceeds the DICOM display window limit; window width capped at %.0e",
                       width, MAX_WINDOW_WIDTH)
        width = MAX_WINDOW_WIDTH
    return low / 2.0 + high / 2.0, width


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
    centre, width = display_window(low, high)
    window = hd.VOILUTTransformation(window_center=centre, window_width=width,
                                     voi_lut_function=hd.VOILUTFunctionValues.LINEAR_EXACT)
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
        voi_lut_transformations=[window],
        # Image/Frame Type value 4 takes a defined term of Derived Pixel Contrast; highdicom's default
        # QUANTITY is not one. NONE: the pixels are not one of the listed arithmetic derivations
        # (addition, subtraction, ...) of the source pixels, but a model output.
        derived_pixel_contrast=hd.pm.DerivedPixelContrastValues.NONE,
        **DEVICE,
    )
    _set_laterality(pmap, sources[0])
    with atomic_path(path) as tmp:
        pmap.save_as(tmp)
    logger.debug("wrote DICOM Parametric Map %s", path)
    return Path(path)


def _set_laterality(pmap, source) -> None:
    """General Series Laterality (type 2C): the source's value, else present and empty (unknown).

    dciodvfy reports a Parametric Map without it as an error; an empty value is the standard's
    "unknown", which is what we know when the source does not say.
    """
    if "Laterality" not in pmap:
        pmap.Laterality = str(getattr(source, "Laterality", "") or "")
