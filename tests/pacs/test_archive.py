"""An archive run against a real Orthanc: one query, 2 torchrun ranks (gloo, CPU), a rank killed, a rerun on 1.

64 small CT series (4 of them with a corrupt instance) in 8 studies are found by one QIDO-RS query
read in pages of 16. Two ranks share them; once rank 1 has stored a few series it is killed with
SIGKILL (torchrun then stops rank 0). A rerun with one process finishes the work. Counted in
Orthanc itself: exactly one SEG and one Parametric Map per good series, nothing for the corrupt
ones, which are listed with their reasons; no series was taken up twice in one run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from aaclip_med.cli import main
from aaclip_med.pacs import series_key
from tests.pacs.conftest import DERIVED, THRESHOLD, TINY, corrupt_copy, upload, write_ct

DATE = "20240301"  # only this test's series carry it
QUERY = f"Modality=CT&StudyDate={DATE}"
STUDIES, PER_STUDY, CORRUPT = 8, 8, 4
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="no torchrun next to the Python executable")


def _cli(*args) -> tuple[int, str]:
    """``aaclip-med ARGS`` in this process; (exit code, stdout + stderr)."""
    with contextlib.redirect_stdout(out := io.StringIO()), contextlib.redirect_stderr(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def _dated(paths: list[Path]) -> list[Path]:
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.StudyDate = DATE
        ds.save_as(path)
    return paths


def _env(orthanc) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return env | {"OMP_NUM_THREADS": "1", "AACLIP_PACS_USER": orthanc.user, "AACLIP_PACS_PASSWORD": orthanc.password,
                  "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _torchrun(orthanc, ranks: int, out: Path, *args) -> subprocess.Popen:
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", str(ranks), "-m", "aaclip_med.cli", "pacs", "run",
           "--url", orthanc.dicomweb_url, "--out", str(out), "--threshold", str(THRESHOLD), *TINY, *map(str, args)]
    return subprocess.Popen(cmd, env=_env(orthanc), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _status(out: Path, rank: int) -> dict:
    try:
        return json.loads((out / "status" / f"rank-{rank}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _source_of(client, study: str, item: dict) -> str:
    """The source Series UID a stored SEG / PM references (read back from Orthanc's own metadata)."""
    meta = client.retrieve_instance_metadata(study, item["0020000E"]["Value"][0], item["00080018"]["Value"][0])
    return meta["00081115"]["Value"][0]["0020000E"]["Value"][0]


def _derived_per_source(client, studies: list[str]) -> dict[str, Counter]:
    """kind ("SEG", "PM") -> Counter of source Series UIDs, over every instance Orthanc holds in ``studies``."""
    counts = {kind: Counter() for kind in DERIVED}
    for study in studies:
        for item in client.search_for_instances(study):
            sop_class = item.get("00080016", {}).get("Value", [None])[0]
            for kind, uid in DERIVED.items():
                if sop_class == uid:
                    counts[kind][_source_of(client, study, item)] += 1
    return counts


@pytest.fixture(scope="module")
def archive(orthanc, client, tmp_path_factory):
    """The series uploaded, a 2-rank run killed half-way, the status read while it ran, a 1-process rerun."""
    root = tmp_path_factory.mktemp("archive")
    good, corrupt, studies = [], [], []
    for s in range(STUDIES):
        study = generate_uid()
        studies.append(study)
        for n in range(PER_STUDY):
            folder = root / "src" / f"{s}_{n}"
            paths = _dated(write_ct(folder, seed=100 + s * PER_STUDY + n, depth=2, study_uid=study))
            if s < CORRUPT and n == 0:  # one corrupt series in each of the first studies
                paths = corrupt_copy(paths, root / "src" / f"{s}_{n}_bad")
                corrupt.append(upload(client, paths).SeriesInstanceUID)
            else:
                good.append(upload(client, paths).SeriesInstanceUID)
    for path in root.glob("src/**/*.dcm"):
        path.unlink()
    out = root / "out"
    started = time.monotonic()
    first = _torchrun(orthanc, 2, out, "--query", QUERY, "--page-size", 16)
    # kill rank 1 once it has stored a few series (read from its status file, never a fixed sleep)
    watched, end = None, time.monotonic() + 240
    while time.monotonic() < end and first.poll() is None:
        one = _status(out, 1)
        if one.get("done", 0) >= 4 and _status(out, 0).get("done", 0) >= 1:
            watched = _cli("pacs", "status", out)  # read while both ranks work
            os.kill(int(one["pid"]), signal.SIGKILL)
            break
        time.sleep(0.2)
    first_log = first.communicate(timeout=120)[0]
    first_status = [_status(out, 0), _status(out, 1)]
    after = _cli("pacs", "status", out)  # both processes of that run are gone now (one killed, one stopped)
    first_run = json.loads((out / "pacs_run.json").read_text())["run_id"]
    states_after_kill = {p.stem: json.loads(p.read_text()) for p in (out / "state").glob("*.json")}
    # the rerun: one process (a plain CLI call is a world of one)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in _env(orthanc).items():
            patch.setenv(key, value)
        rerun = _cli("pacs", "run", "--url", orthanc.dicomweb_url, "--out", out, "--threshold", THRESHOLD, *TINY,
                     "--query", QUERY, "--page-size", 16)
    seconds = time.monotonic() - started
    return {"root": root, "out": out, "good": good, "corrupt": corrupt, "studies": studies, "first": first,
            "first_log": first_log, "watched": watched, "first_status": first_status, "after": after, "first_run": first_run,
            "after_kill": states_after_kill, "rerun": rerun, "seconds": seconds}


def test_the_kill_happened_mid_run(archive):
    assert archive["watched"] is not None, archive["first_log"][-3000:]
    assert archive["first"].returncode != 0  # torchrun reports the killed rank
    done_first = [k for k, r in archive["after_kill"].items() if r.get("status") == "done"]
    assert 5 <= len(done_first) < len(archive["good"]), len(done_first)


def test_status_was_readable_while_the_run_went_on(archive):
    code, text = archive["watched"]
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].startswith(f"run {archive['first_run']} started") and "on 2 rank(s), not finished" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[2:] if line.split()[0] in ("0/2", "1/2", "all")}
    assert set(rows) == {"0/2", "1/2", "all"}
    assert rows["0/2"][2] == rows["1/2"][2] == "running"
    totals = [line for line in lines if line.startswith("work list: ")]  # failures so far follow it
    assert len(totals) == 1 and totals[0].startswith(f"work list: series {len(archive['good']) + len(archive['corrupt'])}, done ")
    # once the run is over, its killed rank (and the one torchrun then stopped) show as gone: their shares wait
    code, text = archive["after"]
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:] if line.split()[0] in ("0/2", "1/2")}
    assert code == 0 and rows["0/2"][2] == rows["1/2"][2] == "gone", text


def test_shares_were_disjoint_and_balanced(archive):
    """In the first run every series was taken up by one rank at most; the shares' instance totals match."""
    takers = {}
    for key, record in archive["after_kill"].items():
        ranks = [a["rank"] for a in record.get("attempts", []) if a["run_id"] == archive["first_run"]]
        assert len(ranks) <= 1, (key, record)
        if ranks:
            takers[key] = ranks[0]
    assert set(takers.values()) == {0, 1}
    zero, one = archive["first_status"]
    assert zero["share"] + one["share"] == STUDIES * PER_STUDY and abs(zero["share"] - one["share"]) <= 1
    assert not one["finished"] and one["done"] >= 4  # killed mid-share


def test_rerun_did_only_what_was_missing(archive):
    code, text = archive["rerun"]
    good, corrupt = archive["good"], archive["corrupt"]
    assert code == 1, text  # the corrupt series failed
    record = json.loads((archive["out"] / "pacs_run.json").read_text())
    before = {k for k, r in archive["after_kill"].items() if r.get("status") == "done"}
    assert record["counts"] == {"done": len(good) - len(before), "skipped": len(before), "failed": len(corrupt),
                                "ignored": 0, "not processed": 0}
    for key, stored in ((p.stem, json.loads(p.read_text())) for p in (archive["out"] / "state").glob("*.json")):
        runs = [a["run_id"] for a in stored["attempts"]]
        assert len(runs) == len(set(runs)), stored  # never twice in one run
        if key in before:
            assert runs == [archive["first_run"]]  # done before the kill: not touched by the rerun
    assert f"done {len(good) - len(before)}, skipped {len(before)}, ignored 0, failed {len(corrupt)}" in text


def test_exactly_one_seg_and_pm_per_good_series_in_orthanc(archive, client):
    counts = _derived_per_source(client, archive["studies"])
    for kind in DERIVED:
        assert dict(counts[kind]) == dict.fromkeys(archive["good"], 1), kind
    # and what the PACS holds is what the state says was stored
    for uid in archive["good"]:
        record = json.loads((archive["out"] / "state" / f"{series_key(uid)}.json").read_text())
        assert record["status"] == "done" and len(record["stored"]) == 2


def test_corrupt_series_are_listed_with_their_reasons(archive):
    record = json.loads((archive["out"] / "pacs_run.json").read_text())
    failures = {f["series_uid"]: f["error"] for f in record["failures"]}
    assert set(failures) == set(archive["corrupt"])
    for uid, error in failures.items():
        assert error == f"series {uid}: instance {error.split('instance ')[1].split()[0]} is corrupt (pixel data " \
                        "100 bytes of 960 expected); re-send the series"
    text = archive["rerun"][1]
    assert all(f"  failed: {failures[uid]}" in text for uid in failures)
    assert record["throughput"]["series_per_hour"] > 0


def test_storing_again_replaces(archive, orthanc, client, tmp_path):
    """A new folder, the same run, one series again on 2 ranks (more ranks than series): the PACS still holds one
    SEG and one PM of it, and the idle rank says why in one line."""
    uid = archive["good"][0]
    run = _torchrun(orthanc, 2, tmp_path / "again", "--series", uid)
    log = run.communicate(timeout=240)[0]
    assert run.returncode == 0, log[-3000:]
    assert "rank 1 of 2 has nothing to do: 1 series to do for 2 ranks (start at most 1)" in log
    assert "Traceback" not in log
    counts = _derived_per_source(client, archive["studies"])
    assert counts["SEG"][uid] == 1 and counts["PM"][uid] == 1
    again = json.loads((tmp_path / "again" / "state" / f"{series_key(uid)}.json").read_text())
    first = json.loads((archive["out"] / "state" / f"{series_key(uid)}.json").read_text())
    assert again["stored"] == first["stored"]  # the same SOP Instance UIDs: derived, not random


def test_bad_input_is_one_line(archive, orthanc, tmp_path, monkeypatch):
    monkeypatch.setenv("AACLIP_PACS_USER", orthanc.user)
    monkeypatch.setenv("AACLIP_PACS_PASSWORD", orthanc.password)
    common = ["--threshold", THRESHOLD, *TINY]
    # a query that matches nothing: said so, exit status 3
    code, text = _cli("pacs", "run", "--url", orthanc.dicomweb_url, "--query", "StudyDate=19000101",
                      "--out", tmp_path / "none", *common)
    assert code == 3, text
    assert text.strip().splitlines()[-2:] == [
        f"no series matched query StudyDate=19000101 on {orthanc.dicomweb_url}: nothing to do (exit status 3)",
        f"  query StudyDate=19000101: no series on {orthanc.dicomweb_url}"]
    # the archive's folder with another threshold: refused, the field named
    code, text = _cli("pacs", "run", "--url", orthanc.dicomweb_url, "--query", QUERY, "--out", archive["out"],
                      "--threshold", "0.7", *TINY)
    assert code == 1
    assert text.strip().splitlines()[-1] == (
        f"aaclip-med pacs: error: {archive['out']} holds a run made with other settings (threshold: the folder's "
        "run 0.5, this run 0.7); rerun with the same settings to resume, or choose a new --out")
    # an unreachable server
    code, text = _cli("pacs", "run", "--url", "http://127.0.0.1:9/dicom-web", "--query", QUERY, "--out",
                      tmp_path / "down", "--retries", "0", *common)
    assert code == 1 and "Traceback" not in text
    assert text.strip().splitlines()[-1] == (
        f"aaclip-med pacs: error: query {QUERY}: cannot reach http://127.0.0.1:9/dicom-web: connection refused "
        "(after 1 attempt); is the server up and --url right?")
    assert not (tmp_path / "down").exists()  # nothing left behind


def test_status_after_the_rerun(archive):
    code, text = _cli("pacs", "status", archive["out"])
    assert code == 0, text
    good, corrupt = len(archive["good"]), len(archive["corrupt"])
    assert f"work list: series {good + corrupt}, done {good}, failed {corrupt}, ignored 0, left {corrupt}" in text
    assert "on 1 rank(s), finished" in text.splitlines()[0]
    print(f"archive test: {archive['seconds']:.0f} s for the killed 2-rank run and the rerun")
