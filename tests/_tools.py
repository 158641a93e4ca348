"""External programs some tests need (dciodvfy, chromium): skipped locally, required on CI.

Locally a missing program skips its tests with a message saying how to install it. When the
environment variable ``CI`` is set (``.ci/run`` installs both), a missing program fails the test
instead, so a CI machine without it cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

__all__ = ["require_program", "on_ci", "dciodvfy"]


def on_ci() -> bool:
    """Whether the tests run on CI (the ``CI`` environment variable is set and not empty/0/false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_program(names: str | tuple[str, ...], install: str) -> str:
    """Path of the first of ``names`` on PATH; else skip (locally) or fail (CI) naming ``install``."""
    names = (names,) if isinstance(names, str) else names
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    msg = f"{' or '.join(names)} not found on PATH; install it with: {install}"
    if on_ci():
        pytest.fail(f"CI is set but {msg} (.ci/run installs it)", pytrace=False)
    pytest.skip(msg)


def dciodvfy(path) -> tuple[list[str], list[str]]:
    """(errors, warnings) that dicom3tools' dciodvfy reports for one DICOM file."""
    program = require_program("dciodvfy", "apt-get install dicom3tools")
    report = subprocess.run([program, str(path)], capture_output=True, text=True, timeout=60)
    lines = (report.stdout + report.stderr).splitlines()
    return [x for x in lines if x.startswith("Error")], [x for x in lines if x.startswith("Warning")]
