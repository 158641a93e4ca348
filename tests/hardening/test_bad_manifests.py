"""Bad manifests through read_manifest, ManifestDataset and `aaclip-med evaluate` / `prepare`.

Every error names the manifest (and line) and what is wrong; nothing outside the dataset root is
ever read.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from aaclip_med.data import DataError, ManifestDataset, read_manifest

from ._files import write_png

GOOD = {"image_path": "a.png", "label": 0, "class_name": "scan"}


def _manifest(tmp_path, *records, name="m.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"label": 0, "class_name": "scan"}, "missing key(s) ['image_path']"),
        ({"image_path": "a.png", "class_name": "scan"}, "missing key(s) ['label']"),
        ({"image_path": "a.png", "label": 0}, "missing key(s) ['class_name']"),
        ({**GOOD, "image_path": "/etc/passwd"}, "is absolute"),
        ({**GOOD, "image_path": "C:\\data\\a.png"}, "is absolute"),
        ({**GOOD, "image_path": "../outside.png"}, "escapes the dataset root"),
        ({**GOOD, "image_path": "sub/../../outside.png"}, "escapes the dataset root"),
        ({**GOOD, "mask_path": "..\\outside.png", "label": 1}, "escapes the dataset root"),
        ({**GOOD, "label": 0.5}, "label must be 0 (normal) or 1"),
        ({**GOOD, "image_path": ""}, "image_path is empty"),
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_line_named(tmp_path, record, problem):
    path = _manifest(tmp_path, GOOD | {"image_path": "first.png"}, record)
    with pytest.raises(DataError) as info:
        read_manifest(path)
    assert f"{path}:2" in str(info.value) and problem in str(info.value)


def test_duplicate_line_refused(tmp_path):
    path = _manifest(tmp_path, GOOD, {**GOOD, "image_path": "b.png"}, GOOD)
    with pytest.raises(DataError, match=r"m.jsonl:3: duplicate of .*m.jsonl:1: 'a.png'"):
        read_manifest(path)


def test_same_volume_different_slices_is_not_a_duplicate(tmp_path):
    path = _manifest(tmp_path, {**GOOD, "image_path": "v.nii.gz", "slice_index": 0},
                     {**GOOD, "image_path": "v.nii.gz", "slice_index": 1})
    assert len(read_manifest(path)) == 2


@pytest.mark.parametrize("content", ["", "\n\n", "[]"])
def test_empty_manifest_refused(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match="empty.jsonl: manifest holds no records"):
        read_manifest(path)


def test_unknown_class_lists_the_known_ones(tmp_path):
    path = _manifest(tmp_path, {**GOOD, "class_name": "kidney-ish"})
    with pytest.raises(DataError, match=r"m.jsonl: class\(es\) \['kidney-ish'\] have no description.*'scan'"):
        ManifestDataset(path, tmp_path, known_classes=["scan", "brain"])


def test_missing_image_file_named_at_load(tmp_path):
    dataset = ManifestDataset(_manifest(tmp_path, GOOD), tmp_path)
    with pytest.raises(DataError, match="a.png: file not found"):
        dataset[0]


def test_missing_mask_file_named(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    dataset = ManifestDataset(_manifest(tmp_path, {**GOOD, "label": 1, "mask_path": "gone.png"}), tmp_path)
    with pytest.raises(DataError, match="gone.png: mask file not found"):
        dataset[0]


# --- the same through the CLI -------------------------------------------------------------------


def _predictions(tmp_path, entries):
    """A predictions folder that matches `entries` line by line (maps of 4 x 4)."""
    preds = tmp_path / "preds"
    (preds / "maps").mkdir(parents=True)
    lines = []
    for n, entry in enumerate(entries):
        np.save(preds / f"maps/{n:06d}.npy", np.zeros((4, 4), np.float32))
        lines.append({"index": n, "image_path": entry["image_path"], "class_name": entry["class_name"],
                      "label": entry["label"], "image_score": 0.1 * n, "global_score": 0.0, "map_max": 0.0,
                      "map_path": f"maps/{n:06d}.npy", "domain": "medical"})
    (preds / "predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (preds / "run.json").write_text(json.dumps({"backbone": "aaclip-tiny", "random_weights": True}))
    return preds


@pytest.mark.parametrize(
    ("mask_path", "problem"),
    [("../secret.png", "escapes the dataset root"), ("/tmp/secret.png", "is absolute")],
)
def test_evaluate_refuses_paths_outside_the_root(tmp_path, cli, mask_path, problem):
    root = tmp_path / "data"
    root.mkdir()
    write_png(tmp_path / "secret.png", np.full((4, 4), 255, np.uint8))  # exists: it must not be read
    entries = [{**GOOD, "label": 1, "mask_path": mask_path}, {**GOOD, "image_path": "b.png"}]
    manifest = _manifest(tmp_path, *entries)
    code, _, err = cli("evaluate", "--manifest", manifest, "--dataset-root", root,
                       "--predictions", _predictions(tmp_path, entries), "--out", tmp_path / "report")
    assert code == 1
    assert f"{manifest}:1" in err and problem in err
    assert not (tmp_path / "report").exists()


def test_evaluate_empty_manifest(tmp_path, cli):
    manifest = tmp_path / "empty.jsonl"
    manifest.write_text("")
    code, _, err = cli("evaluate", "--manifest", manifest, "--dataset-root", tmp_path,
                       "--predictions", _predictions(tmp_path, []), "--out", tmp_path / "report")
    assert code == 1 and "empty.jsonl: the manifest holds no records" in err


def test_evaluate_missing_key_named(tmp_path, cli):
    entries = [{"image_path": "a.png", "label": 0, "class_name": "scan"}]
    preds = _predictions(tmp_path, entries)
    manifest = _manifest(tmp_path, {"image_path": "a.png", "label": 0})
    code, _, err = cli("evaluate", "--manifest", manifest, "--dataset-root", tmp_path, "--predictions", preds,
                       "--out", tmp_path / "report")
    assert code == 1 and "predictions.jsonl:1: missing key 'class_name'" in err


def test_evaluate_missing_manifest(tmp_path, cli):
    code, _, err = cli("evaluate", "--manifest", tmp_path / "nope.jsonl", "--dataset-root", tmp_path,
                       "--predictions", _predictions(tmp_path, []), "--out", tmp_path / "report")
    assert code == 1 and "nope.jsonl" in err


@pytest.mark.parametrize(
    ("layout", "setup", "problem"),
    [
        ("mvtec", lambda root: None, "no class folder with a test/ sub-folder"),
        ("folder", lambda root: (root / "normal").mkdir(), "no images in normal/ or abnormal/"),
        ("cohort", lambda root: (root / "images").mkdir(), "holds no NIfTI file or DICOM series folder"),
        ("polyp", lambda root: None, "no images/ folder"),
    ],
)
def test_prepare_empty_dataset_named(tmp_path, cli, layout, setup, problem):
    root = tmp_path / "ds"
    root.mkdir()
    setup(root)
    code, _, err = cli("prepare", layout, root, "--out", tmp_path / "m.jsonl")
    assert code == 1 and problem in err and str(root) in err
    assert not (tmp_path / "m.jsonl").exists()


def test_prepare_cohort_with_a_bad_case_names_it(tmp_path, cli):
    from ._files import nifti

    root = tmp_path / "ds"
    nifti(root / "images" / "good.nii.gz", np.ones((4, 4, 3), np.float32))
    bad = np.ones((4, 4, 3), np.float32)
    bad[0, 0, 0] = np.nan
    nifti(root / "images" / "bad.nii.gz", bad)
    code, _, err = cli("prepare", "cohort", root, "--out", tmp_path / "m.jsonl")
    assert code == 1 and "bad.nii.gz: holds 1 NaN/Inf voxel(s)" in err
    assert not (tmp_path / "m.jsonl").exists()


def test_slice_index_out_of_range_names_line_index_and_count(tmp_path, cli):
    from ._files import nifti

    nifti(tmp_path / "v.nii.gz", np.random.default_rng(0).random((8, 8, 3)).astype(np.float32))
    path = _manifest(tmp_path, {**GOOD, "image_path": "v.nii.gz", "slice_index": 1},
                     {**GOOD, "image_path": "v.nii.gz", "slice_index": 7})
    expected = "slice_index 7 is out of range: the volume has 3 slices along its slice axis (0 to 2) (manifest line 2)"
    dataset = ManifestDataset(path, tmp_path)
    assert dataset[0]["image"].shape[1:] == (8, 8)
    with pytest.raises(DataError) as info:
        dataset[1]
    assert str(info.value) == f"{tmp_path / 'v.nii.gz'}: {expected}"
    code, printed, _ = cli("infer", "--manifest", path, "--dataset-root", tmp_path, "--out", tmp_path / "o",
                           "--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu")
    assert code == 1 and expected in printed
