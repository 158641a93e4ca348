"""The sample's CT series, and SEG / Parametric Map objects derived from it, pass dciodvfy with no error."""

from __future__ import annotations

import numpy as np
import pydicom

from aaclip_med.inference.writers.dicom_pmap import write_parametric_map
from aaclip_med.inference.writers.dicom_seg import write_segmentation
from tests._tools import dciodvfy


def _series(small_sample):
    files = sorted((small_sample.parent / "ct" / "ct_study").glob("*.dcm"))
    assert len(files) == 4
    return files


def test_sample_ct_series_has_no_dciodvfy_error(small_sample):
    for path in _series(small_sample):
        errors, _ = dciodvfy(path)
        assert errors == [], path.name
    header = pydicom.dcmread(_series(small_sample)[0])
    assert header.StudyDate == "" and header.Manufacturer.startswith("aaclip-med")  # nothing invented


def test_seg_and_pmap_of_the_sample_series_have_no_dciodvfy_error(small_sample, tmp_path):
    files = _series(small_sample)
    header = pydicom.dcmread(files[0])
    shape = (header.Rows, header.Columns, len(files))
    values = np.random.default_rng(0).random(shape).astype(np.float32)
    for path in (write_parametric_map(values, files, tmp_path / "pmap.dcm"),
                 write_segmentation(values > 0.9, files, tmp_path / "seg.dcm")):
        errors, _ = dciodvfy(path)
        assert errors == [], path.name
