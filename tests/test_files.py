"""The one way files are written: JSON lines, appended lines, staging folders (aaclip_med.files)."""

from __future__ import annotations

import json
import math

import pytest

from aaclip_med.files import (
    TMP_PREFIX,
    append_json_line,
    json_line,
    move_into,
    remove_stale_temporaries,
    staging_folder,
    write_json_atomic,
)


def test_json_line_is_standard_json_on_one_line():
    text = json_line({"score": math.nan, "inf": -math.inf, "path": "scans/Bauch ü/ct 1.nii.gz", "s": (1, 2)})
    assert "\n" not in text and "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"score": None, "inf": None, "path": "scans/Bauch ü/ct 1.nii.gz", "s": [1, 2]}


def test_write_json_atomic_writes_null_for_nan(tmp_path):
    path = write_json_atomic(tmp_path / "a.json", {"std": math.nan})
    assert "NaN" not in path.read_text(encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == {"std": None}


def test_appended_lines_follow_a_torn_line_on_their_own_line(tmp_path):
    log = tmp_path / "run" / "log.jsonl"
    append_json_line(log, {"iteration": 1, "loss": 0.5})
    with open(log, "a", encoding="utf-8") as handle:  # a run killed in the middle of its write
        handle.write('{"iteration": 2, "lo')
    append_json_line(log, {"iteration": 3, "loss": math.inf})
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[0] == '{"iteration": 1, "loss": 0.5}'
    assert lines[1] == '{"iteration": 2, "lo'  # the torn one spoils only itself
    assert json.loads(lines[2]) == {"iteration": 3, "loss": None}
    assert log.read_bytes().endswith(b"}\n")


def test_staging_folder_is_removed_and_only_moved_files_remain(tmp_path):
    with staging_folder(tmp_path, "case") as work:
        assert work.parent == tmp_path and work.name.startswith(f"{TMP_PREFIX}case-")
        (work / "b.txt").write_text("b")
        (work / "a.txt").write_text("a")
        moved = move_into([work / "a.txt", work / "b.txt"], tmp_path)
    assert moved == [tmp_path / "a.txt", tmp_path / "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_staging_folder_is_removed_when_the_work_fails(tmp_path):
    with pytest.raises(RuntimeError, match="half-way"), staging_folder(tmp_path) as work:
        (work / "part.npy").write_bytes(b"x")
        raise RuntimeError("half-way")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_runs_staging_folder_is_found_on_resume(tmp_path):
    work = tmp_path / f"{TMP_PREFIX}calibration-0123abcd"  # the name staging_folder gives
    work.mkdir()
    (work / "ranges.json").write_text("{}")
    assert remove_stale_temporaries(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []
