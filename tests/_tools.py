"""External programs and optional packages some tests need (dciodvfy, chromium, the MONAI Deploy SDK):
skipped locally, required on CI.

Locally a missing one skips its tests with a message saying how to install it. When the
environment variable ``CI`` is set (``.ci/run`` installs them all), a missing one fails the test
instead, so a CI machine without it cannot pass by skipping. :func:`on_ci` is the one rule for
"running on CI" in the tests.
"""

from __future__ import annotations

import importlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from types import ModuleType

import pytest

__all__ = ["require_program", "require_module", "skip_or_fail", "on_ci", "stop_when", "dciodvfy", "chromium_session"]


def on_ci() -> bool:
    """Whether the tests run on CI (the ``CI`` environment variable is set and not empty/0/false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(message: str) -> None:
    """Skip the test with ``message``, or fail it when on CI (where nothing may pass by skipping)."""
    if on_ci():
        pytest.fail(f"CI is set but {message} (.ci/run installs it)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_module(module: str, install: str) -> ModuleType:
    """``module`` imported; else skip (locally) or fail (CI) naming ``install``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        skip_or_fail(f"{module} cannot be imported ({err}); install it with: {install}")


def require_program(names: str | tuple[str, ...], install: str) -> str:
    """Path of the first of ``names`` on PATH; else skip (locally) or fail (CI) naming ``install``."""
    names = (names,) if isinstance(names, str) else names
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    skip_or_fail(f"{' or '.join(names)} not found on PATH; install it with: {install}")


def stop_when(pid: int, ready: Callable[[], bool], timeout: float = 120.0, step: float = 0.02, seed: int = 0) -> bool:
    """Let process ``pid`` run in short random steps and stop it (SIGSTOP) between them until ``ready()``.

    ``ready()`` is read while the process is stopped, so what it saw still holds when the caller
    then kills the process: a test that kills "mid-run" cannot lose a race against a fast machine.
    The steps' random lengths (up to ``step`` s) put the process at an arbitrary point of its work.

    Returns:
        True with the process stopped (send it SIGKILL, or SIGTERM then SIGCONT); False when it
        ended or ``timeout`` passed first (then it is left running).
    """
    rng, deadline = random.Random(seed), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(step / 4, step))
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        if ready():
            return True
        os.kill(pid, signal.SIGCONT)
    return False


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
    webdriver = require_module("selenium.webdriver", "pip install 'aaclip-med[test]'")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--window-size={window[0]},{window[1]}", *extra_flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)
