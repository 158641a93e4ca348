"""One `aaclip-med infer` cohort run over a folder of good and bad cases (tiny backbone, random
weights): every bad case is reported with its file and problem, nothing is written for it, the
good and unusual-but-valid cases finish, and a re-run skips what is done."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from tests.pacs.conftest import write_sr

from ._files import nifti, truncate, write_constant_png, write_png, write_series

TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--seed", "0"]

# case id -> expected problem (a substring of the reported error); None = must finish
EXPECTED = {
    "good": None,
    "four": None,  # 4D NIfTI: volume 0 is used
    "one": None,  # 1 x 1 PNG
    "deep": None,  # 16-bit PNG
    "rgba": None,
    "huge": "exceeds the limit",
    "nan": "NaN/Inf voxel",
    "inf": "NaN/Inf voxel",
    "zero": "zero-size axis",
    "empty": "empty (0 bytes)",
    "corrupt": "cannot be read as nifti",
    "uneven": "not evenly spaced",
    "tilted": "differ in orientation",
    "cut": "is corrupt (pixel data",  # the file ends inside its pixel data
    "short": "is corrupt (pixel data 100 bytes of 512 expected)",  # one slice's PixelData shorter than its header says
    "nopixels": "has no pixel data",
    "study": None,  # a CT series and a structured report: the report is skipped, not a failed case
    "blank": None,  # all zero: no slice reaches --min-foreground, so the case is unscored
}


def _cohort(root):
    rng = np.random.default_rng(0)
    nifti(root / "good.nii.gz", rng.random((12, 10, 2)).astype(np.float32))
    nifti(root / "four.nii.gz", rng.random((12, 10, 2, 3)).astype(np.float32))
    write_png(root / "one.png", np.full((1, 1), 90, np.uint8))
    write_png(root / "deep.png", rng.integers(0, 65535, (9, 7)).astype(np.uint16))
    write_png(root / "rgba.png", rng.integers(0, 255, (8, 6, 4)).astype(np.uint8))
    write_constant_png(root / "huge.png", 20000, 20000, 1)
    bad = rng.random((6, 6, 2)).astype(np.float32)
    bad[1, 1, 1] = np.nan
    nifti(root / "nan.nii.gz", bad)
    bad[1, 1, 1] = np.inf
    nifti(root / "inf.nii.gz", bad)
    nifti(root / "zero.nii.gz", np.zeros((6, 0, 2), np.float32))
    (root / "empty.nii.gz").write_bytes(b"")
    (root / "corrupt.nii.gz").write_bytes(b"\x1f\x8b" + bytes(range(200)))
    write_series(root / "series", depth=3)
    write_series(root / "mixed", depth=3, seed=1)
    write_series(root / "mixed", depth=2, seed=2)
    items = write_series(root / "uneven", depth=4)
    ds = pydicom.dcmread(items[3]["path"])
    ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], ds.ImagePositionPatient[2] + 9]
    ds.save_as(items[3]["path"])
    items = write_series(root / "tilted", depth=4)
    ds = pydicom.dcmread(items[1]["path"])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(items[1]["path"])
    truncate(write_series(root / "cut", depth=3, size=64)[1]["path"], -3000)
    item = write_series(root / "short", depth=3)[1]
    ds = pydicom.dcmread(item["path"])
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(item["path"])
    write_sr(root / "study" / "report.dcm", pydicom.dcmread(write_series(root / "study", depth=3)[0]["path"]).StudyInstanceUID)
    nifti(root / "blank.nii.gz", np.zeros((12, 10, 3), np.float32))
    item = write_series(root / "nopixels", depth=1)[0]
    ds = pydicom.dcmread(item["path"])
    del ds.PixelData
    ds.save_as(item["path"])


@pytest.fixture(scope="module")
def cohort_run(tmp_path_factory):
    from aaclip_med.cli import main

    root = tmp_path_factory.mktemp("cohort")
    _cohort(root / "in")
    out = root / "out"
    code = main(["infer", str(root / "in"), "--out", str(out), "--modality", "mri", "--threshold", "3", *TINY])
    return root, out, code


def test_bad_cases_reported_others_finish(cohort_run):
    _, out, code = cohort_run
    assert code == 1  # some cases failed
    summary = json.loads((out / "summary.json").read_text())
    failed = {f["case_id"]: f for f in summary["failed"]}
    for case, problem in EXPECTED.items():
        if problem is None:
            assert case not in failed, failed.get(case)
            assert (out / f"{case}_scores.json").is_file()
        else:
            assert problem in failed[case]["error"], failed[case]
            assert case in failed[case]["path"]  # the file/folder is named
            assert not list(out.glob(f"{case}_*")), "nothing is written for a failed case"
    assert len(list(out.glob("mixed_*_scores.json"))) == 2  # two series in one folder: two cases
    assert summary["done"] == len([c for c, p in EXPECTED.items() if p is None]) + 3  # + series + 2 mixed
    assert len(failed) == len([p for p in EXPECTED.values() if p])


def test_damaged_slice_is_named_and_nothing_is_inferred(cohort_run):
    _, out, _ = cohort_run
    failed = {f["case_id"]: f for f in json.loads((out / "summary.json").read_text())["failed"]}
    assert "IM0002.dcm: is corrupt" in failed["short"]["error"]  # the cut slice, not just its folder
    assert not list(out.glob("short*"))


def test_report_beside_a_series_is_skipped_not_failed(cohort_run):
    _, out, _ = cohort_run
    assert (out / "study_scores.json").is_file()  # one image series: the case keeps the folder's name
    assert json.loads((out / "study_scores.json").read_text())["case"]["n_slices"] == 3


def test_volume_without_foreground_is_unscored(cohort_run):
    _, out, _ = cohort_run
    case = json.loads((out / "blank_scores.json").read_text())["case"]
    assert case["case_score"] is None and case["max_slice"] is None
    assert case["reason"].startswith("no slice reaches min_foreground 0.05 (largest foreground fraction 0)")
    rows = {row["case_id"]: row for row in json.loads((out / "scores.json").read_text())["cases"]}
    assert rows["blank"]["case_score"] is None and rows["good"]["case_score"] > 0 and rows["good"]["reason"] == ""
    csv_rows = (out / "scores_cases.csv").read_text().splitlines()
    blank = next(line for line in csv_rows if line.startswith("blank,"))
    header = csv_rows[0].split(",")
    assert blank.split(",")[header.index("case_score")] == ""


def test_one_pixel_and_16_bit_outputs_keep_the_source_size(cohort_run):
    from PIL import Image

    _, out, _ = cohort_run
    assert Image.open(out / "one_heatmap.png").size == (1, 1)
    assert Image.open(out / "deep_blend.png").size == (7, 9)
    assert Image.open(out / "rgba_blend.png").mode == "RGB"


def test_rerun_skips_done_cases_and_reports_the_bad_ones_again(cohort_run, capsys):
    from aaclip_med.cli import main

    root, out, _ = cohort_run
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*_anomaly.nii.gz")}
    code = main(["infer", str(root / "in"), "--out", str(out), "--modality", "mri", "--threshold", "3", *TINY])
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert code == 1 and summary["done"] == 0 and summary["skipped"] == len([p for p in EXPECTED.values() if p is None]) + 3
    assert "failed: " in printed and "huge.png" in printed
    assert before == {p.name: p.stat().st_mtime_ns for p in out.glob("*_anomaly.nii.gz")}
