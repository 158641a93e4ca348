"""``--engine auto`` with the rule forced to an exported-graph engine, run in a child process of the tests.

``python -m tests.export._auto_run WORK SERIES ENGINE FORMAT`` replaces the rule's rows by one that picks
ENGINE (FORMAT) for fp32 and runs ``aaclip-med infer`` on SERIES: a first run (exports into the cache of
``$AACLIP_MED_CACHE``), a second (reuses it), one after another graph was put in the cache entry's
folder, one after the model file was cut short, a torch fp32 run to compare the maps with, and a
torch run into the first run's folder (a resume with another engine). Writes ``auto.json``: per
run its exit code, printed text and the aaclip_med log lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import sys
from pathlib import Path

from aaclip_med.cli import main
from aaclip_med.export import choice

SIZE = 112
MODEL = ["--backbone", "aaclip-tiny", "--image-size", str(SIZE), "--backbone-weights", "random", "--modality", "ct",
         "--precision", "fp32", "--no-progress"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def _cli(argv: list[str]) -> dict:
    handler = _Lines()
    logging.getLogger("aaclip_med").addHandler(handler)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["-v", *argv])
    finally:
        logging.getLogger("aaclip_med").removeHandler(handler)
    return {"code": code, "text": out.getvalue(), "log": handler.lines}


def _entry(cache: Path) -> Path:
    entries = [p for p in (cache / "graphs").iterdir() if not p.name.startswith(".tmp-")]
    assert len(entries) == 1, entries
    return entries[0]


def run(work: Path, series: str, engine: str, fmt: str) -> None:
    import os

    cache = Path(os.environ["AACLIP_MED_CACHE"])
    choice.RULES = (choice.Rule(("fp32",), engine, f"forced by the test to {engine}", fmt=fmt),)
    log = {"first": _cli(["infer", series, "--out", str(work / "first"), *MODEL])}
    entry = _entry(cache)
    log["second"] = _cli(["infer", series, "--out", str(work / "second"), *MODEL])
    # another identity in the entry's folder: the graph of another description
    other = work / "other"
    log["export_other"] = _cli(["export", "--format", fmt, "--out", str(other), "--class-name", "scan",
                                "--description", "another text", *MODEL[:8]])
    shutil.rmtree(entry)
    shutil.copytree(other, entry)
    log["foreign"] = _cli(["infer", series, "--out", str(work / "foreign"), *MODEL])
    model_file = entry / json.loads((entry / "card.json").read_text())["file"]
    model_file.write_bytes(model_file.read_bytes()[:1000])
    log["cut_short"] = _cli(["infer", series, "--out", str(work / "cut_short"), *MODEL])
    log["torch"] = _cli(["infer", series, "--out", str(work / "torch"), "--engine", "torch", *MODEL])
    log["resume_torch"] = _cli(["infer", series, "--out", str(work / "first"), "--engine", "torch", *MODEL])
    log["entry"] = str(entry)
    (work / "auto.json").write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    run(Path(sys.argv[1]), *sys.argv[2:])
