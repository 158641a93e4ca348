"""The sample generator: deterministic, exact masks, consistent DICOM geometry, no identifiers."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from aaclip_med.data import load_image
from aaclip_med.data.dataset import ManifestDataset
from aaclip_med.data.manifest import read_manifest
from aaclip_med.demo import build_sample_items, generate_sample


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_anomalies(small_sample, tmp_path):
    again = generate_sample(tmp_path / "again", size="small", seed=0)
    assert _files(small_sample.parent) == _files(again.parent)
    other = build_sample_items("small", seed=1)
    first = build_sample_items("small", seed=0)
    assert any(not np.array_equal(a.mask, b.mask) for a, b in zip(first, other))


def test_masks_are_exactly_the_planted_anomalies():
    for case in build_sample_items("small", seed=0):
        changed = case.image != case.clean
        changed = changed.any(axis=-1) if case.kind == "image" and changed.ndim == 3 else changed
        np.testing.assert_array_equal(changed, case.mask, err_msg=case.case_id)


def test_every_class_has_normal_and_anomalous_samples(small_sample):
    records = read_manifest(small_sample)
    labels: dict[str, set] = {}
    for record in records:
        labels.setdefault(record["class_name"], set()).add(record["label"])
    assert labels and all(seen == {0.0, 1.0} for seen in labels.values())
    descriptions = json.loads((small_sample.parent / "descriptions.json").read_text())
    assert set(descriptions) == set(labels)


def test_written_masks_match_memory_and_labels(small_sample):
    root = small_sample.parent
    cases = {c.case_id: c for c in build_sample_items("small", seed=0)}
    for record in read_manifest(small_sample):
        case = cases[record["case_id"]]
        if "slice_index" in record:
            mask = np.asarray(nib.load(root / record["mask_path"]).dataobj)[..., record["slice_index"]]
            np.testing.assert_array_equal(mask != 0, case.mask[..., record["slice_index"]])
        elif record["mask_path"]:
            np.testing.assert_array_equal(np.asarray(Image.open(root / record["mask_path"])) != 0, case.mask)
        else:
            assert not case.mask.any()
        assert record["label"] == float(bool(case.mask[..., record.get("slice_index", 0)].any()
                                            if "slice_index" in record else case.mask.any()))


def test_dataset_loads_every_record_with_aligned_mask(small_sample):
    dataset = ManifestDataset(small_sample, small_sample.parent)
    for item in dataset:
        assert item["image"].shape[1:] == item["mask"].shape[1:]
        assert float(item["mask"].max()) == item["label"]


def test_ct_series_geometry_matches_mask_grid(small_sample):
    root = small_sample.parent
    folder = root / "ct" / "ct_study"
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(files)
    series = reader.Execute()
    headers = [pydicom.dcmread(f) for f in files]
    normal = np.cross(*np.reshape(headers[0].ImageOrientationPatient, (2, 3)))
    steps = np.diff([np.asarray(h.ImagePositionPatient, float) for h in headers], axis=0)
    np.testing.assert_allclose(steps, np.tile(normal * float(headers[0].SliceThickness), (len(steps), 1)), atol=1e-3)
    assert len({tuple(h.ImageOrientationPatient) for h in headers}) == 1
    mask = nib.load(root / "ct" / "mask.nii.gz")
    rows, cols, slices = mask.shape
    assert series.GetSize() == (cols, rows, slices)
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    for r, c, k in [(0, 0, 0), (rows - 1, 5, slices - 1), (17, cols - 3, 1)]:
        itk_point = np.array(series.TransformIndexToPhysicalPoint((c, r, k))) * lps_to_ras
        np.testing.assert_allclose(mask.affine @ [r, c, k, 1], [*itk_point, 1], atol=1e-3)
    loaded = load_image(folder)
    np.testing.assert_allclose(np.asarray(loaded.affine), mask.affine, atol=1e-3)
    assert tuple(loaded.shape[1:]) == mask.shape


def test_mri_mask_shares_the_volume_grid(small_sample):
    root = small_sample.parent
    image, mask = nib.load(root / "mri" / "mri_t1.nii.gz"), nib.load(root / "mri" / "mask.nii.gz")
    assert image.shape == mask.shape
    np.testing.assert_array_equal(image.affine, mask.affine)


@pytest.mark.parametrize("needle", [b"CompressedSamples", b"1CT1", b"ABCD1234", b"JFK", b"RHAPSODE"])
def test_no_patient_identifier_of_the_source_file(small_sample, needle):
    for path in (small_sample.parent / "ct" / "ct_study").iterdir():
        assert needle not in path.read_bytes(), path
        header = pydicom.dcmread(path)
        assert str(header.PatientName) == "ANON" and header.PatientID == "ANON"
        assert "OtherPatientIDsSequence" not in header
        assert header.PatientBirthDate == ""  # type 2: present (dciodvfy requires it) and empty


def test_sample_command_writes_the_same_files(small_sample, tmp_path, capsys):
    from aaclip_med.cli import main

    assert main(["sample", str(tmp_path / "cli"), "--size", "small", "--seed", "0"]) == 0
    assert "manifest.jsonl" in capsys.readouterr().out
    assert _files(tmp_path / "cli") == _files(small_sample.parent)


def test_sample_over_an_existing_one_is_refused_unless_forced(small_sample, tmp_path, capsys):
    """A second sample in the same folder would mix old and new slices under one series UID."""
    from aaclip_med.cli import main

    target = tmp_path / "over"
    (target / "ct").mkdir(parents=True)
    (target / "ct" / "old.dcm").write_bytes(b"an earlier sample's slice")
    assert main(["sample", str(target), "--size", "small"]) != 0
    err = capsys.readouterr().err
    assert f"{target} is not empty" in err and "--force" in err
    assert sorted(p.name for p in target.rglob("*")) == ["ct", "old.dcm"]  # nothing written, nothing removed
    assert main(["sample", str(target), "--size", "small", "--force"]) == 0
    assert _files(target) == _files(small_sample.parent)  # replaced whole: the old slice is gone
    with pytest.raises(FileExistsError, match="is not empty"):
        generate_sample(target, size="small")
