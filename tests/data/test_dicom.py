import numpy as np
import pytest

from aaclip_med.data.dicom import find_dicom_series, read_dicom_header, slice_position
from aaclip_med.data.errors import DataError
from tests._synthetic import write_dicom_series


def test_series_sorted_by_position_not_file_order(dicom_series):
    folder, slices = dicom_series
    (series,) = find_dicom_series(folder)
    assert list(series.files) == [s["path"] for s in slices]
    positions = [slice_position(read_dicom_header(f)) for f in series.files]
    assert np.all(np.diff(positions) > 0)


def test_two_series_in_one_folder(tmp_path):
    vol = np.zeros((2, 3, 3), int)
    write_dicom_series(tmp_path, vol, series_uid="1.2.3.1")
    write_dicom_series(tmp_path, np.zeros((3, 3, 3), int), series_uid="1.2.3.2", shuffle_seed=1)
    (tmp_path / "notes.txt").write_text("not dicom")
    found = find_dicom_series(tmp_path)
    assert [s.uid for s in found] == ["1.2.3.1", "1.2.3.2"]
    assert [len(s.files) for s in found] == [2, 3]


def test_no_dicom_raises(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no readable DICOM"):
        find_dicom_series(tmp_path)


def test_empty_file_named(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(DataError, match="empty.dcm: the file is empty"):
        read_dicom_header(tmp_path / "empty.dcm")
