"""``pacs run`` against a real Orthanc: series out by WADO-RS, SEG / Parametric Map back by STOW-RS.

An oblique CT (shuffled file names) is requested by study UID and an MR by query. The objects
stored on the server are fetched back over WADO-RS and checked against the source (referenced SOP
Instance UIDs, each frame's position, Frame of Reference) and against ``aaclip-med infer
--dicom-out`` on the same files (pixel data).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging

import numpy as np
import pydicom
import pytest

from aaclip_med.cli import main
from aaclip_med.pacs import series_key
from tests.pacs.conftest import PLANTED, THRESHOLD, TINY, derived_instances, upload, write_ct, write_mr


def _run_cli(*args) -> tuple[int, str, str]:
    """``aaclip-med -vv ARGS`` in this process; returns (exit code, stdout and stderr, every log line at debug)."""
    handler = logging.StreamHandler(log := io.StringIO())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with contextlib.redirect_stdout(out := io.StringIO()), contextlib.redirect_stderr(out):
            code = main(["-vv", *[str(a) for a in args]])
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    return code, out.getvalue(), log.getvalue()


@pytest.fixture(scope="module")
def runs(orthanc, client, tmp_path_factory):
    """CT by study and MR by query through ``pacs run``, and ``infer --dicom-out`` on the same files."""
    root = tmp_path_factory.mktemp("roundtrip")
    ct, mr = write_ct(root / "src" / "ct"), write_mr(root / "src" / "mr")
    ct_ds, mr_ds = upload(client, ct), upload(client, mr)
    env = {"AACLIP_PACS_USER": orthanc.user, "AACLIP_PACS_PASSWORD": orthanc.password}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        common = ["--url", orthanc.dicomweb_url, "--threshold", THRESHOLD, *TINY]
        ct_run = ["pacs", "run", "--study", ct_ds.StudyInstanceUID, "--out", root / "out_ct", *common]
        mr_run = ["pacs", "run", "--query", "Modality=MR&StudyDate=20240215", "--out", root / "out_mr", *common]
        by_study, by_query = _run_cli(*ct_run), _run_cli(*mr_run)
        again = _run_cli(*ct_run)  # the stored work list, nothing left to do
        other = _run_cli("pacs", "run", "--study", mr_ds.StudyInstanceUID, "--out", root / "out_ct", *common)
        # searched again: the SEG / PM series now in the studies are new rows, passed over as non-image series
        refreshed = [_run_cli(*ct_run, "--refresh-query"), _run_cli(*mr_run, "--refresh-query")]
    infer = [_run_cli("infer", root / "src" / name, "--out", root / f"infer_{name}", "--dicom-out", "--modality",
                      preset, "--threshold", THRESHOLD, *TINY) for name, preset in (("ct", "ct"), ("mr", "mr"))]
    return {"root": root, "ct": (ct, ct_ds), "mr": (mr, mr_ds), "by_study": by_study, "by_query": by_query,
            "again": again, "other": other, "refreshed": refreshed, "infer": infer}


def _stored(client, study_uid: str, kind: str) -> list[pydicom.Dataset]:
    """Every SEG or PM instance (``kind``) of the study, fetched over WADO-RS."""
    return [client.retrieve_instance(study_uid, item["0020000E"]["Value"][0], item["00080018"]["Value"][0])
            for item in derived_instances(client, study_uid, kind)]


def _frames(ds: pydicom.Dataset) -> dict[str, tuple[np.ndarray, list[float]]]:
    """Source SOP Instance UID -> (frame pixels, ImagePositionPatient of the frame)."""
    pixels = ds.pixel_array
    pixels = pixels[None] if pixels.ndim == 2 else pixels
    frames = {}
    for frame, item in zip(pixels, ds.PerFrameFunctionalGroupsSequence, strict=True):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert uid not in frames, f"two frames reference source instance {uid}"
        frames[uid] = (frame, [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
    return frames


@pytest.mark.parametrize("name", ["ct", "mr"])
def test_stored_objects_match_source_and_file_outputs(runs, client, name):
    assert runs["by_study"][0] == 0 and runs["by_query"][0] == 0, runs["by_study"][1] + runs["by_query"][1]
    files, first = runs[name]
    sources = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p) for p in files)}
    key = series_key(first.SeriesInstanceUID)
    infer_out = runs["root"] / f"infer_{name}"
    for modality, suffix in (("SEG", "seg"), ("PM", "pmap")):
        stored = _stored(client, first.StudyInstanceUID, modality)
        assert len(stored) == 1, f"{name}: {len(stored)} {modality} objects in the study"
        obj = stored[0]
        assert obj.FrameOfReferenceUID == first.FrameOfReferenceUID
        assert obj.StudyInstanceUID == first.StudyInstanceUID
        assert obj.ReferencedSeriesSequence[0].SeriesInstanceUID == first.SeriesInstanceUID
        frames = _frames(obj)
        assert set(frames) == set(sources)  # every source slice, once
        for uid, (_, position) in frames.items():
            np.testing.assert_allclose(position, [float(v) for v in sources[uid].ImagePositionPatient], atol=1e-4)
        # same pixels as the file outputs of `aaclip-med infer --dicom-out` on the source files
        reference = _frames(pydicom.dcmread(infer_out / f"{name}_{suffix}.dcm"))
        assert set(reference) == set(frames)
        for uid in frames:
            np.testing.assert_array_equal(frames[uid][0], reference[uid][0])
        # and the same object as the run's own output file (what was stored is what was written)
        local = pydicom.dcmread(runs["root"] / f"out_{name}" / "results" / key / f"{key}_{suffix}.dcm")
        assert local.SOPInstanceUID == obj.SOPInstanceUID


def test_segmentation_is_not_trivial(runs):
    """The threshold splits the tiny model's map: the SEG compared above has both labels."""
    seg = pydicom.dcmread(runs["root"] / "infer_ct" / "ct_seg.dcm").pixel_array
    assert 0 < seg.mean() < 1


def test_rerun_reuses_the_work_list_and_skips_what_was_stored(runs):
    code, out, log = runs["again"]
    assert code == 0, out
    assert "done 0, skipped 1, ignored 0, failed 0" in out
    reuse = [line for line in log.splitlines() if "reusing the work list of study " + runs["ct"][1].StudyInstanceUID in line]
    assert len(reuse) == 1 and reuse[0].endswith(": 1 series; --refresh-query searches again for new ones")


def test_another_request_into_the_same_folder_is_refused_naming_both(runs):
    code, out, _ = runs["other"]
    assert code == 1
    ct_study, mr_study = runs["ct"][1].StudyInstanceUID, runs["mr"][1].StudyInstanceUID
    assert out.strip().splitlines()[-1] == (
        f"aaclip-med pacs: error: {runs['root'] / 'out_ct'} holds the run of study {ct_study}; this run asks for "
        f"study {mr_study}; use another --out, or the same request to resume")


def test_refresh_adds_only_new_series_the_derived_ones_passed_over(runs, client):
    for (code, out, _), name in zip(runs["refreshed"], ("ct", "mr"), strict=True):
        assert code == 0, out
        record = json.loads((runs["root"] / f"out_{name}" / "pacs_run.json").read_text())
        statuses = {s["series_uid"]: s["status"] for s in record["series"]}
        assert statuses[runs[name][1].SeriesInstanceUID] == "skipped"
        study = runs[name][1].StudyInstanceUID
        derived = {item["0020000E"]["Value"][0] for kind in ("SEG", "PM") for item in derived_instances(client, study, kind)}
        # the CT study holds its SEG and PM series; the MR query matches the MR study's PM only (the PM has the
        # source's Modality, a SEG has Modality SEG)
        assert len(derived) == 2
        found = {uid for uid in derived if uid in statuses}
        assert found == (derived if name == "ct" else found) and len(found) == (2 if name == "ct" else 1)
        assert all(statuses[uid] == "ignored" for uid in found)
        assert record["counts"]["failed"] == 0 and record["counts"]["ignored"] == len(found)


def test_run_record_and_state(runs):
    for name in ("ct", "mr"):
        out = runs["root"] / f"out_{name}"
        record = json.loads((out / "state" / f"{series_key(runs[name][1].SeriesInstanceUID)}.json").read_text())
        assert record["status"] == "done" and record["stored"] == record["output_uids"]
        assert record["study_uid"] == runs[name][1].StudyInstanceUID
        assert not any((out / "incoming").iterdir())  # retrieved instances removed once stored
        run = json.loads((out / "pacs_run.json").read_text())
        assert run["server"].endswith("/dicom-web") and run["credentials"] == "$AACLIP_PACS_PASSWORD"
        assert run["model"]["backbone"] == "aaclip-tiny" and run["options"]["threshold"] == THRESHOLD
        worklist = [json.loads(line) for line in (out / "worklist.jsonl").read_text().splitlines()]
        assert worklist[0]["server"] == run["server"] and worklist[0]["series"] == len(worklist) - 1


def test_no_identifier_or_secret_outside_dicom_objects(runs, orthanc):
    needles = [*PLANTED.values(), "Doe", "Planted", orthanc.password]
    logs = "".join(run[2] for run in (runs["by_study"], runs["by_query"], runs["again"], *runs["refreshed"]))
    assert "series" in logs and runs["mr"][1].SeriesInstanceUID in logs  # the logs were captured, name UIDs
    assert [n for n in needles if n in logs] == []
    scanned = 0
    for path in [*(runs["root"] / "out_ct").rglob("*"), *(runs["root"] / "out_mr").rglob("*")]:
        assert not [n for n in needles if n.lower() in path.name.lower()], path
        if path.is_file() and path.suffix != ".dcm":
            data = path.read_bytes()
            assert [n for n in needles if n.encode() in data] == [], path
            scanned += 1
    assert scanned >= 10
