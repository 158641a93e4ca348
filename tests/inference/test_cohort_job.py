"""Cohort runs: resume after a crash, a corrupt case among good ones, summaries and tables."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from aaclip_med.inference import case_outputs, cohort_job, run_inference
from tests.inference.conftest import IntensityModel


def _outputs(folder) -> dict[str, object]:
    """Final output files (not run metadata) -> content for comparison."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".nii.gz"):
            out[path.name] = np.asarray(nib.load(str(path)).dataobj)
        elif path.name not in ("run.json", "summary.json") and path.is_file():
            out[path.name] = path.read_text()
    return out


def test_resume_after_crash_equals_uninterrupted_run(tmp_path, nifti_cases, monkeypatch):
    reference = tmp_path / "reference"
    run_inference([nifti_cases], reference, IntensityModel(), modality="ct", threshold=0.5, device="cpu")

    calls = {"n": 0}
    real_mask = case_outputs.write_nifti_mask

    def crashing_mask(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second case dies half-way, after its overlay was staged
            raise KeyboardInterrupt
        return real_mask(*args, **kwargs)

    monkeypatch.setattr(case_outputs, "write_nifti_mask", crashing_mask)
    monkeypatch.setattr(cohort_job.shutil, "rmtree", lambda *a, **k: None)  # a killed process cleans nothing
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_inference([nifti_cases], out, IntensityModel(), modality="ct", threshold=0.5, device="cpu")
    assert any(p.name.startswith(".tmp-") for p in out.iterdir())  # the crash left a staging folder
    assert not (out / "case1_anomaly.nii.gz").exists()
    monkeypatch.undo()

    model = IntensityModel()
    summary = run_inference([nifti_cases], out, model, modality="ct", threshold=0.5, device="cpu")
    assert summary["skipped"] == 1 and summary["done"] == 2 and not summary["failed"]
    assert model.images_seen == 2 * 5  # two cases of five slices recomputed, the finished one not
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    ref, got = _outputs(reference), _outputs(out)
    assert ref.keys() == got.keys()
    for name, value in ref.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[name], value)
        else:
            assert got[name] == value, name


def test_corrupt_case_is_reported_and_others_finish(tmp_path, nifti_cases):
    (nifti_cases / "broken.nii.gz").write_bytes(b"not a nifti file")
    summary = run_inference([nifti_cases], tmp_path / "out", IntensityModel(), modality="ct", device="cpu")
    assert summary["done"] == 3 and summary["total"] == 4
    assert len(summary["failed"]) == 1 and "broken.nii.gz" in summary["failed"][0]["error"]
    assert not list((tmp_path / "out").glob("broken*"))
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["failed"][0]["case_id"] == "broken"
    cases = (tmp_path / "out" / "scores_cases.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in cases[1:]] == ["case0", "case1", "case2"]


def test_case_score_is_max_over_slices(tmp_path, nifti_cases):
    run_inference([nifti_cases], tmp_path / "out", IntensityModel(), modality="ct", device="cpu")
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    for case in scores["cases"]:
        slices = [s for s in scores["slices"] if s["case_id"] == case["case_id"]]
        assert len(slices) == 5
        assert case["case_score"] == max(s["image_score"] for s in slices)
        best = max(slices, key=lambda s: s["image_score"])
        assert case["max_slice"] == best["slice_index"]
    by_id = {c["case_id"]: c["max_slice"] for c in scores["cases"]}
    assert by_id == {"case0": 1, "case1": 3, "case2": 2}  # the slices holding the blobs


def test_damaged_slice_and_empty_volume_through_the_api(tmp_path, nifti_cases, caplog):
    """The library entry point (the bundle's too) refuses a short PixelData and reports an
    all-background volume as unscored, with a named warning, never with a number."""
    import pydicom

    from tests._synthetic import write_dicom_series, write_nifti

    files = [item["path"] for item in write_dicom_series(nifti_cases / "cut", np.zeros((3, 16, 16), np.int16))]
    ds = pydicom.dcmread(files[2])
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(files[2])
    write_nifti(nifti_cases / "air.nii.gz", np.full((20, 18, 5), -1000, np.float32))  # CT: all below air level
    summary = run_inference([nifti_cases], tmp_path / "out", IntensityModel(), modality="ct", device="cpu")
    failed = {f["case_id"]: f["error"] for f in summary["failed"]}
    assert list(failed) == ["cut"] and f"{files[2].name}: is corrupt (pixel data 100 bytes of 512 expected)" in failed["cut"]
    rows = {row["case_id"]: row for row in json.loads((tmp_path / "out" / "scores.json").read_text())["cases"]}
    assert rows["air"]["case_score"] is None and rows["air"]["reason"].startswith("no slice reaches min_foreground")
    assert rows["case0"]["case_score"] > 0 and rows["case0"]["reason"] == ""
    assert any("air.nii.gz: no slice reaches min_foreground" in r.getMessage() and "unscored" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
