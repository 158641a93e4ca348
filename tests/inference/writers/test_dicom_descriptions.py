"""SEG and Parametric Map say what they are: descriptions, labels, value mapping, modality, frame order.

Both kinds of Parametric Map values are written and read back: "probability" (through a
calibration's table of normal map values, in [0, 1]) and "raw" (its range in the mapping).
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from aaclip_med.inference.calibration import CDF_POINTS, ClassCalibration
from aaclip_med.inference.writers.dicom_pmap import write_parametric_map
from aaclip_med.inference.writers.dicom_seg import write_segmentation
from tests._synthetic import write_dicom_series
from tests._tools import dciodvfy

SHAPE = (12, 10, 5)  # rows, columns, slices
WEIGHTS = "0123456789abcdef" * 4
PATIENT = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    volume = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE[2:] + SHAPE[:2]) % 300
    return [s["path"] for s in write_dicom_series(tmp_path_factory.mktemp("src") / "ser", volume, angle_deg=0.0)]


@pytest.fixture(scope="module")
def calibration():
    normal = np.random.default_rng(0).normal(1.0, 0.5, 20_000)
    return ClassCalibration("scan", "scan", "medical", [0.0, 1.0], 0.5, 0.7, 1.0, 0.5, {}, "ct",
                            np.quantile(normal, np.linspace(0, 1, CDF_POINTS)).tolist())


def _raw() -> np.ndarray:
    return np.random.default_rng(1).normal(1.0, 1.0, SHAPE).astype(np.float32)


def _frames_by_slice(pmap, files) -> np.ndarray:
    """(rows, columns, slices) from the frames, each put on the slice of the source it references."""
    slice_of = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: k for k, f in enumerate(files)}
    out = np.zeros(SHAPE, np.float32)
    for frame, group in zip(pmap.pixel_array.reshape(-1, *SHAPE[:2]), pmap.PerFrameFunctionalGroupsSequence, strict=True):
        out[..., slice_of[group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]] = frame
    return out


def _mapping(pmap):
    return pmap.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]


def test_probability_map(series, calibration, tmp_path):
    raw = _raw()
    path = write_parametric_map(raw, series, tmp_path / "pm.dcm", values="probability", calibration=calibration,
                                weights_sha256=WEIGHTS)
    pmap, source = pydicom.dcmread(path), pydicom.dcmread(series[0])
    np.testing.assert_allclose(_frames_by_slice(pmap, series), calibration.map_probability(raw), atol=1e-7)
    assert 0.0 <= pmap.pixel_array.min() and pmap.pixel_array.max() <= 1.0
    mapping = _mapping(pmap)
    assert mapping.LUTLabel == "P_NORMAL_LE" and "normal" in mapping.LUTExplanation
    assert (mapping.DoubleFloatRealWorldValueFirstValueMapped, mapping.DoubleFloatRealWorldValueLastValueMapped) == (0, 1)
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "1"
    quantity = mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0]
    assert (quantity.CodeValue, quantity.CodingSchemeDesignator, quantity.CodeMeaning) == ("122157", "DCM", "Probability")
    window = pmap.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    assert (float(window.WindowCenter), float(window.WindowWidth)) == (0.5, 1.0)
    assert pmap.SeriesDescription == "AA-CLIP, anomaly probability vs normal, weights 01234567"
    assert pmap.ContentLabel == "ANOMALY_PROB"
    assert pmap.Modality == source.Modality == "CT"  # the acquisition's modality (PS3.3 C.8.32.1)
    assert all(pmap.get(k) == source.get(k) for k in PATIENT)  # copied, nothing invented
    assert dciodvfy(path)[0] == []


def test_raw_map_keeps_its_range(series, tmp_path):
    raw = _raw()
    pmap = pydicom.dcmread(write_parametric_map(raw, series, tmp_path / "pm.dcm"))
    np.testing.assert_array_equal(_frames_by_slice(pmap, series), raw)
    mapping = _mapping(pmap)
    assert mapping.LUTLabel == "AACLIP_RAW"
    assert mapping.DoubleFloatRealWorldValueFirstValueMapped == pytest.approx(raw.min())
    assert mapping.DoubleFloatRealWorldValueLastValueMapped == pytest.approx(raw.max())
    assert "QuantityDefinitionSequence" not in mapping
    assert pmap.SeriesDescription == "AA-CLIP, raw anomaly map, untrained adapters" and pmap.ContentLabel == "ANOMALY_RAW"


def test_frames_go_along_the_slice_normal(series, tmp_path):
    """OHIF places frame i on the i-th slice of its volume, sorted along row x column direction."""
    pmap = pydicom.dcmread(write_parametric_map(_raw(), series, tmp_path / "pm.dcm"))
    orientation = np.asarray(pmap.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient)
    normal = np.cross(orientation[:3], orientation[3:])
    along = [float(np.dot(normal, g.PlanePositionSequence[0].ImagePositionPatient))
             for g in pmap.PerFrameFunctionalGroupsSequence]
    assert along == sorted(along) and len(set(along)) == SHAPE[2]


def test_probability_needs_a_calibration_with_a_table(series, calibration, tmp_path):
    with pytest.raises(ValueError, match="needs the calibration"):
        write_parametric_map(_raw(), series, tmp_path / "a.dcm", values="probability")
    old = ClassCalibration(**{**calibration.__dict__, "pixel_cdf": None})
    with pytest.raises(ValueError, match="fit it again with --calibrate-normals"):
        write_parametric_map(_raw(), series, tmp_path / "b.dcm", values="probability", calibration=old)
    with pytest.raises(ValueError, match="must be one of"):
        write_parametric_map(_raw(), series, tmp_path / "c.dcm", values="percent")
    assert not any(tmp_path.iterdir())


def test_segmentation_says_what_it_is(series, tmp_path):
    path = write_segmentation(_raw() >= 1.5, series, tmp_path / "seg.dcm", threshold=1.5, weights_sha256=WEIGHTS)
    seg = pydicom.dcmread(path)
    assert seg.SeriesDescription == "AA-CLIP, anomaly mask, raw map >= 1.5, weights 01234567"
    assert seg.ContentLabel == "ANOMALY_MASK" and "raw map >= 1.5" in seg.ContentDescription
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == "AA-CLIP anomaly, raw map >= 1.5"
    assert len(segment.RecommendedDisplayCIELabValue) == 3  # viewers warn without a colour
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "AA-CLIP"
    assert "threshold=1.5" in algorithm.AlgorithmParameters and WEIGHTS in algorithm.AlgorithmParameters
    assert dciodvfy(path)[0] == []
