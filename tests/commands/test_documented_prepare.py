"""The documented `aaclip-med prepare` commands, run on tiny copies of the public releases.

Every `aaclip-med prepare` line of docs/reproducing-the-paper.md, docs/training.md and
docs/data.md runs as written, with `/data/...` pointing at fake trees that have the releases'
folder and file names (tests/data/_layouts.py); each manifest must be the list the published runs
used (VisA's 1cls test split for training, the test splits for testing).
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from aaclip_med.cli import main
from tests._synthetic import write_nifti
from tests.data import _layouts as layouts

REPO = Path(__file__).resolve().parents[2]
DOCS = ("reproducing-the-paper.md", "training.md", "data.md")


def _prepare_lines() -> list[tuple[str, str]]:
    lines = []
    for name in DOCS:
        for block in re.findall(r"^```bash\n(.*?)^```", (REPO / "docs" / name).read_text(), re.M | re.S):
            lines += [(name, line.strip()) for line in block.splitlines() if line.strip().startswith("aaclip-med prepare")]
    return lines


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """/data as the docs use it, with the expected record lists per documented manifest."""
    data = tmp_path_factory.mktemp("data")
    visa = layouts.make_visa(data / "VisA")
    bmad = layouts.make_bmad(data / "BMAD")
    polyp = layouts.make_polyp(data / "polyp" / "TestDataset")
    (data / "liver_cohort" / "images").mkdir(parents=True)
    write_nifti(data / "liver_cohort" / "images" / "case01.nii.gz", np.zeros((4, 5, 3), np.float32))
    expected = {
        "visa_train.jsonl": visa["test"],
        "mvtec_test.jsonl": layouts.make_mvtec(data / "mvtec_ad"),
        "btad_test.jsonl": layouts.make_btad(data / "BTAD"),
        "mpdd_test.jsonl": layouts.make_mpdd(data / "MPDD"),
        "brain_mri.jsonl": bmad["Brain_AD"]["test"],
        "liver_ct.jsonl": bmad["Liver_AD"]["test"],
        "retina_oct.jsonl": bmad["Retina_RESC_AD"]["test"],
        "brain_valid.jsonl": bmad["Brain_AD"]["valid"],
        "kvasir.jsonl": polyp["Kvasir"],
        "clinicdb.jsonl": polyp["CVC-ClinicDB"],
        "colondb.jsonl": polyp["CVC-ColonDB"],
        "cvc300.jsonl": polyp["CVC-300"],
    }
    # k-shot manifests: expected (class, label) counts
    shots = {
        "visa_8shot.jsonl": {(c, label): 4 for c in ("candle", "pcb1") for label in (0.0, 1.0)},
        "visa_normals.jsonl": {(c, 0.0): 8 for c in ("candle", "pcb1")},
        "polyp_all.jsonl": {(s, 1.0): 4 for s in layouts.POLYP_SETS},
        "liver.jsonl": {("scan", 0.0): 3},
    }
    return data, expected, shots


def test_docs_hold_the_paper_commands():
    outs = {shlex.split(line)[shlex.split(line).index("--out") + 1] for _, line in _prepare_lines()}
    assert {"manifests/visa_train.jsonl", "manifests/mvtec_test.jsonl", "manifests/brain_mri.jsonl",
            "manifests/retina_oct.jsonl", "manifests/cvc300.jsonl"} <= outs


@pytest.mark.parametrize(("doc", "line"), _prepare_lines(), ids=lambda v: v[:70])
def test_documented_prepare_builds_the_published_list(doc, line, releases, tmp_path, capsys):
    data, expected, shots = releases
    args = shlex.split(line)[1:]
    args = [str(data / a[len("/data/"):]) if a.startswith("/data/") else a for a in args]
    out = tmp_path / Path(args[args.index("--out") + 1]).name
    args[args.index("--out") + 1] = str(out)
    assert main(args) == 0, f"{doc}: {line}"
    records = [json.loads(x) for x in out.read_text().splitlines()]
    if out.name in expected:
        assert sorted(layouts.as_rows(records)) == sorted(expected[out.name]), f"{doc}: {line}"
    else:
        assert out.name in shots, f"{doc}: no expectation for {out.name}; add one to this test"
        assert Counter((r["class_name"], r["label"]) for r in records) == shots[out.name], f"{doc}: {line}"
    if "--check-masks" in args:
        assert "0 anomalous image(s) with an empty mask" in capsys.readouterr().out
