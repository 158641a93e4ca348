"""Unwritable and full output folders: a clear error, no partial file under a final name, and a
cohort run goes on with the other cases."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from ._files import nifti

TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--seed", "0"]


def _unwritable(tmp_path):
    """An output folder that cannot be created: chmod does not stop root (CI), so as root the
    folder is asked for below a regular file, which stops everyone."""
    if os.geteuid() != 0:
        parent = tmp_path / "locked"
        parent.mkdir()
        parent.chmod(0o500)
        return parent / "out"
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    return blocker / "out"


@pytest.fixture
def cases(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("case_a", "case_b"):
        nifti(tmp_path / "in" / f"{name}.nii.gz", rng.random((10, 8, 2)).astype(np.float32))
    return tmp_path / "in"


def test_unwritable_output_folder_is_a_clear_error(tmp_path, cases, cli):
    out = _unwritable(tmp_path)
    code, _, err = cli("infer", cases, "--out", out, *TINY)
    assert code == 1 and str(out) in err


def test_unwritable_output_folder_writes_nothing(tmp_path, cases, cli):
    out = _unwritable(tmp_path)
    code, _, err = cli("infer", cases, "--out", out, *TINY)
    assert code == 1 and str(out) in err
    assert not out.exists()


def test_disk_full_mid_case_leaves_no_partial_file(tmp_path, cases, cli, monkeypatch):
    """The first NIfTI write fills the disk half-way: that case fails, with nothing under its
    final name and no temporary left; the other case finishes; a re-run completes the first."""
    import nibabel

    from aaclip_med.inference.writers import nifti as nifti_writer

    real_save, calls = nibabel.save, []

    def full_disk(image, filename):
        calls.append(filename)
        if len(calls) == 1:
            with open(filename, "wb") as handle:
                handle.write(b"\x1f\x8b partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return real_save(image, filename)

    monkeypatch.setattr(nifti_writer.nib, "save", full_disk)
    out = tmp_path / "out"
    code, printed, _ = cli("infer", cases, "--out", out, "--threshold", "0", *TINY)
    summary = json.loads((out / "summary.json").read_text())
    assert code == 1 and summary["done"] == 1
    [failed] = summary["failed"]
    assert "No space left on device" in failed["error"] and failed["case_id"] == "case_a"
    assert not list(out.glob("case_a_*")) and not list(out.rglob(".tmp-*"))
    assert (out / "case_b_anomaly.nii.gz").is_file()
    monkeypatch.setattr(nifti_writer.nib, "save", real_save)
    code, _, _ = cli("infer", cases, "--out", out, "--threshold", "0", *TINY)
    assert code == 0 and (out / "case_a_anomaly.nii.gz").is_file()


def test_disk_full_while_writing_a_report_keeps_no_partial_report(tmp_path, monkeypatch):
    from aaclip_med import files

    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        files.write_text_atomic(tmp_path / "report.json", '{"half": ')
    monkeypatch.setattr(files.os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _read_only(monkeypatch, folder):
    """``folder`` as on a read-only mount (EROFS stops root too; chmod would not)."""
    from aaclip_med import files

    real_access = files.os.access
    monkeypatch.setattr(files.os, "access", lambda p, mode, **kw: False if str(p) == str(folder) else real_access(p, mode, **kw))


@pytest.mark.parametrize("command", ["infer", "train"])
def test_read_only_output_folder_is_refused_before_the_model_loads(tmp_path, cases, cli, monkeypatch, command):
    import aaclip_med.model

    out = tmp_path / "readonly"
    out.mkdir()
    _read_only(monkeypatch, out)
    monkeypatch.setattr(aaclip_med.model, "build_aaclip", lambda *a, **k: pytest.fail("the model was loaded"))
    if command == "infer":
        code, _, err = cli("infer", cases, "--out", out, *TINY)
    else:
        manifest = tmp_path / "train.jsonl"
        manifest.write_text(json.dumps({"image_path": "in/case_a.nii.gz", "label": 0, "class_name": "scan"}) + "\n")
        code, _, err = cli("train", "--manifest", manifest, "--dataset-root", tmp_path, "--out", out, *TINY)
    assert code == 1
    assert f"--out {out}: the output folder is not writable" in err, err
    assert list(out.iterdir()) == []


def test_output_folder_below_a_read_only_parent_is_refused(tmp_path, monkeypatch):
    from aaclip_med.files import check_output_folder

    _read_only(monkeypatch, tmp_path)
    with pytest.raises(OSError, match=f"--out {tmp_path / 'new'}: cannot create the output folder in {tmp_path}"):
        check_output_folder(tmp_path / "new")
    assert not (tmp_path / "new").exists()
