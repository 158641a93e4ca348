"""Float DICOM Parametric Map (highdicom) of an anomaly map, referencing the source series.

Two kinds of values (``--pmap-values``):

- ``probability``: each voxel's normal-reference probability ``P(normal map value <= v)`` in [0, 1]
  (:meth:`~aaclip_med.inference.calibration.ClassCalibration.map_probability`). Its real-world
  value mapping names the quantity (DCM 122157 "Probability", unit UCUM "1") and its window is
  [0, 1]: OHIF, which expects a probability-like map, shows it as a coloured overlay as it is.
- ``raw``: the raw AA-CLIP map (unbounded; its range is in the mapping and the window).

The series says what it is: its Series Description names the method, the kind of values and the
adapters' short hash, its Content Label the kind of values; its Modality is the source's (the
standard expects the acquisition modality for a map derived from one modality). Its frames go by
increasing position along the slice normal, the order OHIF places them in.
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

__all__ = ["write_parametric_map", "display_window", "PMAP_LABELS"]

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


# values kind -> (LUT Label (SH, 16), LUT Explanation (LO, 64), Content Label (CS, 16), description words)
PMAP_LABELS = {
    "probability": ("P_NORMAL_LE", "P(normal map value <= v), normal references", "ANOMALY_PROB",
                    "anomaly probability vs normal"),
    "raw": ("AACLIP_RAW", f"raw {METHOD} anomaly map (unbounded)", "ANOMALY_RAW", "raw anomaly map"),
}


def write_parametric_map(score_map: np.ndarray, source_files: Sequence[Path], path: str | os.PathLike, *,
                         values: str = "raw", calibration=None, weights_sha256: str | None = None) -> Path:
    """Write the map as 32-bit float frames with a real-world value mapping that says what they are.

    Args:
        score_map: (rows, columns[, slices]) raw map, on the grid of the source series.
        source_files: the series' files in slice order.
        path: target ``.dcm`` file.
        values: "raw" (the map as it is) or "probability" (through ``calibration``).
        calibration: the class calibration (a ``ClassCalibration``) turning raw values into
            probabilities; needed for "probability".
        weights_sha256: the adapters' sha256 (its first 8 digits go in the description).

    Raises:
        ValueError: unknown ``values``, or "probability" without a calibration that has a table.
    """
    if values not in PMAP_LABELS:
        raise ValueError(f"Parametric Map values must be one of {sorted(PMAP_LABELS)}, got {values!r}")
    if values == "probability" and calibration is None:
        raise ValueError("a probability Parametric Map needs the calibration of normal references")
    hd = import_highdicom()
    sources = read_sources(source_files)
    check_plane_geometry(sources, source_files, "Parametric Map", required=True)
    raw = np.asarray(score_map, dtype=np.float32)
    pixels = frames(calibration.map_probability(raw) if values == "probability" else raw, len(sources))
    low, high = (0.0, 1.0) if values == "probability" else (float(pixels.min()), float(pixels.max()))
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
        real_world_value_mappings=[_value_mapping(hd, values, low, high)],
        voi_lut_transformations=[window],
        # Image/Frame Type value 4 takes a defined term of Derived Pixel Contrast; highdicom's default
        # QUANTITY is not one. NONE: the pixels are not one of the listed arithmetic derivations
        # (addition, subtraction, ...) of the source pixels, but a model output.
        derived_pixel_contrast=hd.pm.DerivedPixelContrastValues.NONE,
        series_description=series_description(PMAP_LABELS[values][3], weights_tag(weights_sha256)),
        content_label=PMAP_LABELS[values][2],
        content_description=f"{METHOD} zero-shot {PMAP_LABELS[values][3]}",
        **DEVICE,
    )
    pmap.Modality = sources[0].get("Modality") or "OT"  # the acquisition's modality (PS3.3 C.8.32.1); OT: unknown
    _set_laterality(pmap, sources[0])
    _frames_along_normal(pmap)
    with atomic_path(path) as tmp:
        pmap.save_as(tmp)
    logger.debug("wrote DICOM Parametric Map %s", path)
    return Path(path)


def _value_mapping(hd, values: str, low: float, high: float):
    """Identity real-world value mapping over ``[low, high]``: "Probability" (unit 1) or the raw map (no unit)."""
    from pydicom.sr.codedict import codes

    label, explanation = PMAP_LABELS[values][:2]
    quantity = codes.DCM.Probability if values == "probability" else None
    return hd.pm.RealWorldValueMapping(lut_label=label, lut_explanation=explanation, unit=codes.UCUM.NoUnits,
                                       value_range=(low, high), slope=1.0, intercept=0.0,
                                       quantity_definition=quantity)


def _frames_along_normal(pmap) -> None:
    """Reorder the frames by increasing position along the slice normal (row x column direction).

    highdicom sorts them the other way (for an axial series: from head to feet). The standard
    leaves the order free and each frame keeps its own position and source reference, but OHIF
    3.13 places frame i on the i-th slice of its volume, which it sorts along this normal: without
    the reorder it shows the map with its slices reversed (caught by tests/pacs/test_ohif_viewer.py).
    """
    groups = list(pmap.PerFrameFunctionalGroupsSequence)
    orientation = np.asarray(pmap.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient,
                             dtype=np.float64)
    normal = np.cross(orientation[:3], orientation[3:])
    distances = [float(np.dot(normal, np.asarray(g.PlanePositionSequence[0].ImagePositionPatient, dtype=np.float64)))
                 for g in groups]
    order = np.argsort(distances, kind="stable")
    if len(groups) < 2 or np.array_equal(order, np.arange(len(groups))):
        return
    pixels = np.asarray(pmap.pixel_array).reshape(len(groups), pmap.Rows, pmap.Columns)
    pmap.PerFrameFunctionalGroupsSequence = [groups[k] for k in order]
    pmap.FloatPixelData = np.ascontiguousarray(pixels[order], dtype="<f4").tobytes()


def _set_laterality(pmap, source) -> None:
    """General Series Laterality (type 2C): the source's value, else present and empty (unknown).

    dciodvfy reports a Parametric Map without it as an error; an empty value is the standard's
    "unknown", which is what we know when the source does not say.
    """
    if "Laterality" not in pmap:
        pmap.Laterality = str(getattr(source, "Laterality", "") or "")
