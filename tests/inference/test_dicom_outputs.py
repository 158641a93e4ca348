"""DICOM SEG and Parametric Map: read back with highdicom/pydicom, frames match the overlay."""

from __future__ import annotations

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom

from aaclip_med.inference import run_inference
from tests._synthetic import write_dicom_series
from tests._tools import dciodvfy
from tests.inference.conftest import blob_volume


def test_seg_and_parametric_map_reference_the_source(tmp_path, fake_model):
    volume = blob_volume(shape=(16, 18, 4), center=(6, 11, 2))
    slices = write_dicom_series(tmp_path / "in" / "ser", np.moveaxis(volume, -1, 0).round().astype(np.int16))
    out = tmp_path / "out"
    threshold = 0.5
    summary = run_inference([tmp_path / "in"], out, fake_model, modality="ct", threshold=threshold, dicom=True, device="cpu")
    assert summary["done"] == 1, summary
    overlay = np.asarray(nib.load(str(out / "ser_anomaly.nii.gz")).dataobj)  # (rows, columns, slices)
    source = [pydicom.dcmread(str(s["path"])) for s in slices]
    series_uid = source[0].SeriesInstanceUID

    seg = hd.seg.segread(str(out / "ser_seg.dcm"))
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == source[0].StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
    assert seg.PatientID == source[0].PatientID  # copied by highdicom (patient module), nothing invented
    by_instance = seg.get_pixels_by_source_instance(
        [s.SOPInstanceUID for s in source], segment_numbers=[1], ignore_spatial_locations=True
    )[..., 0]
    np.testing.assert_array_equal(by_instance.astype(bool), np.moveaxis(overlay >= threshold, -1, 0))
    assert by_instance[2].any() and not by_instance[0].any()

    pmap = pydicom.dcmread(str(out / "ser_pmap.dcm"))
    assert pmap.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
    frames = np.frombuffer(pmap.FloatPixelData, dtype=np.float32).reshape(len(source), 16, 18)
    slice_of = {s.SOPInstanceUID: k for k, s in enumerate(source)}
    # frames may be stored in another order: match each to its source instance
    referenced = [frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
                  for frame in pmap.PerFrameFunctionalGroupsSequence]
    assert sorted(slice_of[uid] for uid in referenced) == list(range(len(source)))
    for frame, uid in zip(frames, referenced, strict=True):
        np.testing.assert_allclose(frame, overlay[..., slice_of[uid]], rtol=1e-6)


def test_dicom_outputs_pass_dciodvfy(tmp_path, fake_model):
    """Through run_inference (what users call); test_dicom_conformance.py covers extreme map ranges."""
    volume = blob_volume(shape=(16, 18, 4), center=(6, 11, 2))
    write_dicom_series(tmp_path / "in" / "ser", np.moveaxis(volume, -1, 0).round().astype(np.int16))
    out = tmp_path / "out"
    run_inference([tmp_path / "in"], out, fake_model, modality="ct", threshold=0.5, dicom=True, device="cpu")
    for name in ("ser_seg.dcm", "ser_pmap.dcm"):
        errors, _ = dciodvfy(out / name)
        assert errors == [], f"{name}: {errors}"


def test_empty_seg_is_announced(tmp_path, fake_model, caplog):
    volume = blob_volume(shape=(16, 18, 4), center=(6, 11, 2))
    write_dicom_series(tmp_path / "in" / "ser", np.moveaxis(volume, -1, 0).round().astype(np.int16))
    summary = run_inference([tmp_path / "in"], tmp_path / "out", fake_model, modality="ct", threshold=50.0, dicom=True,
                            device="cpu")
    assert summary["done"] == 1
    assert "ser: no voxel reaches --threshold 50 (map maximum" in caplog.text and "its DICOM SEG is empty" in caplog.text


def test_dicom_outputs_for_other_inputs_are_announced(tmp_path, fake_model, caplog):
    from PIL import Image

    from tests._synthetic import write_nifti

    write_nifti(tmp_path / "in" / "vol.nii.gz", blob_volume(shape=(16, 18, 4), center=(6, 11, 2)), np.eye(4))
    Image.fromarray(np.full((12, 12), 90, np.uint8)).save(tmp_path / "in" / "photo.png")
    summary = run_inference([tmp_path / "in"], tmp_path / "out", fake_model, modality="ct", threshold=0.5, dicom=True,
                            device="cpu")
    assert summary["done"] == 2 and not list((tmp_path / "out").glob("*.dcm"))
    assert "vol: --dicom-out writes DICOM objects for DICOM sources only; this NIfTI input gets none" in caplog.text
    assert "photo: --dicom-out writes DICOM objects for DICOM sources only; this image input gets none" in caplog.text
