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

__all__ = ["require_program", "on_ci", "dciodvfy", "chromium_session"]


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


# Headless Chromium with WebGL2 but no GPU (ANGLE on SwiftShader), and none of the background
# connections that this machine's closed network refuses.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
                  "--enable-unsafe-swiftshader", "--hide-scrollbars", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


def chromium_session(window: tuple[int, int], *extra_flags: str):
    """A selenium session of Debian's Chromium that records the console; skipped/failed as require_program.

    The caller quits it (fixtures yield it and call ``quit()``).
    """
    chromium = require_program(("chromium", "chromium-browser"), "apt-get install chromium chromium-driver")
    driver = require_program("chromedriver", "apt-get install chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        message = "selenium is not installed: pip install 'aaclip-med[test]'"
        pytest.fail(message) if on_ci() else pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--window-size={window[0]},{window[1]}", *extra_flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)
