"""Checks of a received series before inference: images only, whole pixel data, one series."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from aaclip_med.pacs import NotAnImageSeries, SeriesError
from aaclip_med.pacs.series import inspect_series, is_image_sop_class, preset_for_modality
from tests._synthetic import write_dicom_series
from tests.pacs.conftest import corrupt_copy, write_ct, write_mr, write_sr


def test_good_series(tmp_path):
    files = write_ct(tmp_path / "ct", depth=3)
    ds = pydicom.dcmread(files[0])
    info = inspect_series(tmp_path / "ct", ds.SeriesInstanceUID)
    assert info == (ds.StudyInstanceUID, ds.SeriesInstanceUID, "CT", ds.SOPClassUID, 3)
    assert preset_for_modality("auto", info) == "ct" and preset_for_modality("ct-lung", info) == "ct-lung"
    mr = inspect_series(write_mr(tmp_path / "mr", depth=2)[0].parent)
    assert preset_for_modality("auto", mr) == "mri"  # the table infer's --modality auto uses


def test_corrupt_instance_names_series_and_instance(tmp_path):
    bad = corrupt_copy(write_ct(tmp_path / "ct", depth=3), tmp_path / "bad")
    broken = pydicom.dcmread(bad[1])
    with pytest.raises(SeriesError) as info:
        inspect_series(tmp_path / "bad")
    assert str(info.value) == (f"series {broken.SeriesInstanceUID}: instance {broken.SOPInstanceUID} is corrupt "
                               "(pixel data 100 bytes of 960 expected); re-send the series")


@pytest.mark.parametrize("side", [16, 64])  # below and above the size whose reading is deferred
def test_large_instances_are_checked_without_reading_pixels(tmp_path, side):
    volume = np.zeros((3, side, side), np.int16)
    files = [item["path"] for item in write_dicom_series(tmp_path / "ct", volume)]
    assert inspect_series(tmp_path / "ct").instances == 3
    bad = corrupt_copy(files, tmp_path / "bad")
    with pytest.raises(SeriesError, match=f"pixel data 100 bytes of {side * side * 2} expected"):
        inspect_series(bad[0].parent)
    files[0].write_bytes(files[0].read_bytes()[:-200])  # a file cut short inside its pixel data
    with pytest.raises(SeriesError, match="is corrupt|not readable DICOM"):
        inspect_series(tmp_path / "ct")


def test_truncated_file_is_refused(tmp_path):
    files = write_ct(tmp_path / "ct", depth=2)
    files[0].write_bytes(files[0].read_bytes()[:-200])  # cut short inside the pixel data
    with pytest.raises(SeriesError, match="is corrupt|not readable DICOM"):
        inspect_series(tmp_path / "ct")


def test_structured_report_is_not_an_image_series(tmp_path):
    path = write_sr(tmp_path / "sr" / "sr.dcm", "1.2.3.4")
    with pytest.raises(NotAnImageSeries, match=r"not an image series \(Comprehensive SR Storage, Modality SR\)"):
        inspect_series(path.parent)
    assert not is_image_sop_class("1.2.840.10008.5.1.4.1.1.66.4")  # Segmentation
    assert not is_image_sop_class("1.2.840.10008.5.1.4.1.1.30")  # Parametric Map
    assert is_image_sop_class("1.2.840.10008.5.1.4.1.1.1.1")  # Digital X-Ray (For Presentation)


def test_mixed_or_empty_folder_is_refused(tmp_path):
    write_ct(tmp_path / "a", seed=1, depth=2)
    other = write_ct(tmp_path / "b", seed=2, depth=2)
    shutil.copy(other[0], tmp_path / "a" / "zz.dcm")
    with pytest.raises(SeriesError, match="belongs to series"):
        inspect_series(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeriesError, match="no instance received"):
        inspect_series(tmp_path / "empty", "1.2.3")


def test_unknown_modality_needs_a_preset(tmp_path):
    info = inspect_series(write_ct(tmp_path / "ct", depth=2)[0].parent)._replace(modality="US")
    with pytest.raises(SeriesError, match="Modality US has no preset .*pass --modality PRESET"):
        preset_for_modality("auto", info)
