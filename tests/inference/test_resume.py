"""Resuming into an output folder: only with the same settings; run.json is never rewritten by a run
that produced none of its outputs; --force recomputes; a run where every case fails leaves nothing."""

from __future__ import annotations

import json

import pytest

from aaclip_med.inference import InferenceOptions, run_inference
from tests.inference.conftest import IntensityModel


def _strict(path):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_other_settings_are_refused_naming_each_difference(tmp_path, nifti_cases):
    out = tmp_path / "out"
    run_inference([nifti_cases], out, IntensityModel(), modality="ct", threshold=0.5, device="cpu")
    record = (out / "run.json").read_bytes()
    with pytest.raises(ValueError) as info:
        run_inference([nifti_cases], out, IntensityModel(), modality="mri", threshold=0.7, device="cpu")
    message = str(info.value)
    assert "modality: finished work 'ct', this run 'mri'" in message and "threshold: finished work 0.5" in message
    assert "--force" in message and "new output folder" in message
    assert (out / "run.json").read_bytes() == record  # the record of the finished work is kept


def test_same_settings_resume_and_keep_the_record(tmp_path, nifti_cases):
    out = tmp_path / "out"
    run_inference([nifti_cases], out, IntensityModel(), modality="ct", device="cpu")
    record = (out / "run.json").read_bytes()
    model = IntensityModel()
    summary = run_inference([nifti_cases], out, model, modality="ct", batch_size=2, device="cpu")  # batch: no effect
    assert summary["skipped"] == 3 and model.images_seen == 0
    assert (out / "run.json").read_bytes() == record


def test_force_recomputes_every_case_with_the_new_settings(tmp_path, nifti_cases):
    out = tmp_path / "out"
    run_inference([nifti_cases], out, IntensityModel(), modality="ct", device="cpu")
    model = IntensityModel()
    summary = run_inference([nifti_cases], out, model, InferenceOptions(modality="mri", force=True, device="cpu"))
    assert summary["done"] == 3 and summary["skipped"] == 0 and model.images_seen == 15
    assert _strict(out / "run.json")["modality"] == "mri"
    cases = _strict(out / "scores.json")["cases"]
    assert {c["modality"] for c in cases} == {"mri"}


def test_finished_work_without_a_record_is_refused(tmp_path, nifti_cases):
    out = tmp_path / "out"
    run_inference([nifti_cases], out, IntensityModel(), modality="ct", device="cpu")
    (out / "run.json").unlink()
    with pytest.raises(ValueError, match="settings are unknown"):
        run_inference([nifti_cases], out, IntensityModel(), modality="ct", device="cpu")


def test_run_json_is_strict_json(tmp_path, nifti_cases):
    run_inference([nifti_cases], tmp_path / "out", IntensityModel(), modality="ct", threshold=0.5, device="cpu")
    record = _strict(tmp_path / "out" / "run.json")
    assert record["threshold"] == 0.5 and record["slices"]["min_foreground"] == 0.05


def test_every_case_failing_leaves_nothing_behind(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    for name in ("a", "b"):
        (cases / f"{name}.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "out"
    summary = run_inference([cases], out, IntensityModel(), modality="ct", device="cpu")
    assert summary["all_failed"] and summary["done"] == 0 and len(summary["failed"]) == 2
    assert not out.exists()  # no run.json, tables or summary.json claiming a result


def test_every_case_failing_in_an_existing_folder_keeps_its_other_files(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "a.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    summary = run_inference([cases], out, IntensityModel(), modality="ct", device="cpu")
    assert summary["all_failed"]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_manifest_run_where_every_source_fails_leaves_nothing(tmp_path):
    from aaclip_med.data.manifest import write_manifest

    root = tmp_path / "data"
    root.mkdir()
    for name in ("a", "b"):
        (root / f"{name}.png").write_bytes(b"not a png")
    manifest = write_manifest([{"image_path": f"{n}.png", "label": 0.0, "class_name": "scan"} for n in ("a", "b")],
                              root / "m.jsonl")
    summary = run_inference([], tmp_path / "pred", IntensityModel(), modality="photo", manifest=manifest, device="cpu")
    assert summary["all_failed"] and {f["case_id"] for f in summary["failed"]} == {"a.png", "b.png"}
    assert not (tmp_path / "pred").exists()


def test_differences_inside_structured_settings_show_the_values_that_differ():
    from aaclip_med.inference.resume import differences

    slices = {"axis": "acquisition", "start": 0, "stop": None, "min_foreground": 0.05, "skip_empty": False,
              "description_of_a_long_setting": "x" * 60}
    finished = {"slices": slices, "descriptions": ["a long class description " * 3, "brick"]}
    new = {"slices": slices | {"start": 2, "stop": 6}, "descriptions": ["a long class description " * 3, "grass"]}
    assert differences(finished, new) == [
        "descriptions[1]: finished work 'brick', this run 'grass'",
        "slices.start: finished work 0, this run 2",
        "slices.stop: finished work None, this run 6",
    ]
