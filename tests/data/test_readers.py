import numpy as np
import pytest
from monai.transforms import LoadImage

from aaclip_med.data.errors import DataError
from aaclip_med.data.loading import load_image
from aaclip_med.data.readers import DicomSeriesReader
from tests._synthetic import write_dicom_series


def _lps_of_pixel(item, i, j):
    return item["position"] + j * item["spacing"][1] * item["row_dir"] + i * item["spacing"][0] * item["col_dir"]


def test_oblique_unsorted_series_geometry_matches_tags(dicom_series, ct_volume):
    folder, slices = dicom_series
    image = LoadImage(reader=DicomSeriesReader(), image_only=True, ensure_channel_first=True)(folder)
    assert tuple(image.shape) == (1, 6, 5, 4)  # (C, rows, columns, slices)
    affine = np.asarray(image.affine)
    for k, item in enumerate(slices):
        for i, j in [(0, 0), (5, 4), (2, 3)]:
            ras = affine @ [i, j, k, 1]
            np.testing.assert_allclose(ras[:3] * [-1, -1, 1], _lps_of_pixel(item, i, j), atol=1e-4)
            assert float(image[0, i, j, k]) == ct_volume[k, i, j]


def test_choose_series_by_uid(tmp_path):
    write_dicom_series(tmp_path, np.full((2, 3, 3), 5), series_uid="1.2.3.1")
    write_dicom_series(tmp_path, np.full((3, 3, 3), 9), series_uid="1.2.3.2")
    load = LoadImage(reader=DicomSeriesReader(series_uid="1.2.3.1"), image_only=True, ensure_channel_first=True)
    image = load(tmp_path)
    assert image.shape[-1] == 2 and float(image.max()) == 5
    default = LoadImage(reader=DicomSeriesReader(), image_only=True, ensure_channel_first=True)(tmp_path)
    assert default.shape[-1] == 3  # the largest series


def test_unknown_uid_lists_choices(tmp_path):
    write_dicom_series(tmp_path, np.zeros((2, 3, 3)), series_uid="1.2.3.1")
    with pytest.raises(DataError, match=r"1\.2\.3\.1"):
        DicomSeriesReader(series_uid="9.9").read(tmp_path)


def test_slice_of_another_size_is_named_with_both_sizes(tmp_path):
    import pydicom

    slices = write_dicom_series(tmp_path, np.zeros((3, 16, 16), np.int16), angle_deg=0.0, shuffle_seed=None)
    ds = pydicom.dcmread(slices[1]["path"])
    ds.Rows = ds.Columns = 8
    ds.PixelData = np.zeros((8, 8), np.int16).tobytes()
    ds.save_as(slices[1]["path"])
    with pytest.raises(DataError, match=rf"slices differ in size: {slices[1]['path'].name} is 8 x 8, "
                                        rf"{slices[0]['path'].name} is 16 x 16"):
        load_image(tmp_path)


def test_itk_errors_keep_their_reason_not_the_source_line():
    from aaclip_med.data.readers import itk_reason

    raw = ("Exception thrown in SimpleITK ImageSeriesReader_Execute: /tmp/SimpleITK-build/ITK/Modules/IO/GDCM/src/"
           "itkGDCMImageIO.cxx:468:\nITK ERROR: GDCMImageIO(0x55d0c1a3b2c0): Cannot read requested file\n")
    assert itk_reason(RuntimeError(raw)) == "Cannot read requested file"
    raw = ("Exception thrown in SimpleITK ImageSeriesReader_Execute: /x/itkImageFileReader.hxx:338:\nImageIO returns "
           "IO region that does not fully contain the requested region. Requested region: ImageRegion (0x7fff2a30c300)"
           "\n  Dimension: 3\n  Size: [16, 16, 1]\n")
    assert itk_reason(RuntimeError(raw)) == ("ImageIO returns IO region that does not fully contain the requested "
                                             "region. Requested region: ImageRegion Dimension: 3 Size: [16, 16, 1]")
