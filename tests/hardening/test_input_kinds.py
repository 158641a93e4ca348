"""Inputs a user is likely to have, run through the CLI as a user would: paths with spaces and
non-ASCII letters, a 16-bit PNG, an RGB DICOM (with and without an image plane), a 4D NIfTI.

Each gives its outputs, or one line naming the file and the problem.
"""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from aaclip_med.cli import main
from tests._synthetic import write_nifti

from ._files import write_png

TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--seed", "0", "--no-progress"]


def _cases(out):
    with open(out / "scores_cases.csv", encoding="utf-8", newline="") as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle)}


def _rgb_dicom(folder, pixels: np.ndarray, plane: bool):
    """One 8-bit RGB secondary capture; ``plane`` adds the image plane (position, orientation, spacing)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.PatientID = generate_uid(), generate_uid(), "OT", "X"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    if plane:
        ds.FrameOfReferenceUID = generate_uid()
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 1
    folder.mkdir(parents=True)
    ds.save_as(folder / "photo.dcm", enforce_file_format=True)
    return folder / "photo.dcm"


def test_paths_with_spaces_and_non_ascii_letters(tmp_path, capsys):
    source = write_png(tmp_path / "Patient Ä 名" / "Bild ü 1.png", (np.arange(32 * 32) % 251).astype(np.uint8).reshape(32, 32))
    out = tmp_path / "Ergebnisse ñ"
    assert main(["infer", str(source.parent), "--out", str(out), *TINY]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    assert (out / "Bild ü 1_heatmap.png").is_file() and (out / "Bild ü 1_blend.png").is_file()
    assert _cases(out)["Bild ü 1"]["source"] == str(source)
    assert json.loads((out / "Bild ü 1_scores.json").read_text(encoding="utf-8"))


def test_16_bit_png_is_read_at_its_full_scale(tmp_path):
    from PIL import Image

    array = (np.linspace(0, 60000, 40 * 48).reshape(40, 48)).astype(np.uint16)
    source = write_png(tmp_path / "in" / "deep.png", array)
    assert Image.open(source).mode == "I;16"
    assert main(["infer", str(source), "--out", str(tmp_path / "out"), *TINY]) == 0
    case = _cases(tmp_path / "out")["deep"]
    assert case["modality"] == "mri" and case["modality_reason"].startswith("16-bit gray image")
    assert Image.open(tmp_path / "out" / "deep_heatmap.png").size == (48, 40)  # the source's size


def test_rgb_dicom_gives_the_map_seg_and_parametric_map(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (24, 20, 3))
    source = _rgb_dicom(tmp_path / "in", pixels, plane=True)
    out = tmp_path / "out"
    assert main(["infer", str(source.parent), "--out", str(out), "--dicom-out", "--threshold", "0.5", *TINY]) == 0
    assert nib.load(out / "in_anomaly.nii.gz").shape == (24, 20, 1)  # the three samples are colour, not slices
    for suffix in ("seg", "pmap"):
        derived = pydicom.dcmread(out / f"in_{suffix}.dcm")
        assert derived.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(source).SeriesInstanceUID
        assert (derived.Rows, derived.Columns) == (24, 20)


def test_rgb_dicom_without_an_image_plane_is_refused_for_dicom_outputs_only(tmp_path, capsys):
    source = _rgb_dicom(tmp_path / "in", np.full((16, 16, 3), 90), plane=False)
    assert main(["infer", str(source.parent), "--out", str(tmp_path / "dicom"), "--dicom-out", *TINY]) == 1
    printed = capsys.readouterr()
    assert (f"{source}: has no image plane (a secondary capture?): ImagePositionPatient, ImageOrientationPatient, "
            "PixelSpacing missing, which a DICOM Parametric Map needs") in printed.out + printed.err
    assert not (tmp_path / "dicom").exists() or not list((tmp_path / "dicom").glob("in_*"))  # nothing half-written
    assert main(["infer", str(source.parent), "--out", str(tmp_path / "nifti"), *TINY]) == 0
    assert nib.load(tmp_path / "nifti" / "in_anomaly.nii.gz").shape == (16, 16, 1)


def test_4d_nifti_keeps_volume_0_with_the_source_geometry(tmp_path, caplog):
    affine = np.diag([0.8, 0.9, 2.0, 1.0])
    affine[:3, 3] = [-10.0, 5.0, 30.0]
    data = np.random.default_rng(1).random((16, 12, 4, 3)).astype(np.float32)
    source = write_nifti(tmp_path / "in" / "dwi.nii.gz", data, affine)
    with caplog.at_level("INFO", logger="aaclip_med"):
        assert main(["infer", str(source), "--out", str(tmp_path / "out"), *TINY]) == 0
    assert f"{source}: 4D NIfTI, keeping volume 0 of 3" in caplog.text
    result = nib.load(tmp_path / "out" / "dwi_anomaly.nii.gz")
    assert result.shape == (16, 12, 4)
    np.testing.assert_allclose(result.affine, affine, atol=1e-5)


def test_a_source_with_part_of_an_image_plane_is_refused_for_a_seg(tmp_path):
    from aaclip_med.data import DataError
    from aaclip_med.inference.writers.dicom_seg import write_segmentation

    source = _rgb_dicom(tmp_path / "in", np.full((8, 8, 3), 90), plane=True)
    ds = pydicom.dcmread(source)
    del ds.PixelSpacing
    ds.save_as(source)
    with pytest.raises(DataError) as info:  # highdicom: AttributeError 'FileDataset' object has no attribute ...
        write_segmentation(np.ones((8, 8), bool), [source], tmp_path / "seg.dcm", threshold=0.5)
    assert str(info.value).startswith(f"{source}: has part of its image plane: PixelSpacing missing, which a DICOM SEG")
    assert not (tmp_path / "seg.dcm").exists()
