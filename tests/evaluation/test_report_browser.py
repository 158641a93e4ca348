"""report.html and viewer.html in headless Chromium (Debian ``chromium`` + ``chromium-driver``, selenium).

The pages are opened the way users open them: from disk (``file://``), and the viewer also from a
local web server. Each test checks the console has no error. Screenshots go to the test's folder;
with ``AACLIP_DOC_FIGURES=1`` they also replace the figures of docs/outputs.md (docs/figures/).

Locally the tests skip when Chromium, chromedriver or selenium is missing; with ``CI`` set they fail.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests._tools import chromium_session

DOC_FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"
_WAIT_S = 60


@pytest.fixture(scope="module")
def browser():
    session = chromium_session((1280, 1000))
    yield session
    session.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Save a screenshot in the test folder (and in docs/figures with AACLIP_DOC_FIGURES=1)."""
    folder = tmp_path_factory.mktemp("screenshots")

    def save(driver, name: str) -> Path:
        path = folder / name
        driver.save_screenshot(str(path))
        pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        assert pixels.std() > 10, f"{name} is blank"
        if os.environ.get("AACLIP_DOC_FIGURES"):
            shutil.copyfile(path, DOC_FIGURES / name)
        return path

    return save


def _errors(driver) -> list[str]:
    """Console errors since the last call (reading the log empties it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _open(driver, url: str) -> None:
    _errors(driver)  # forget what earlier pages logged
    driver.get("about:blank")
    driver.get(url)
    # chromedriver can hand back control at "interactive" while images of a long page still load
    # (seen once on CI); wait for the load event rather than assert on the first read.
    deadline = time.monotonic() + _WAIT_S
    while driver.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not finish loading in {_WAIT_S} s")
        time.sleep(0.05)


def _wait_viewer(driver) -> dict:
    deadline = time.monotonic() + _WAIT_S
    while time.monotonic() < deadline:
        state = driver.execute_script("return window.aaclipViewer && window.aaclipViewer.ready ? "
                                      "{error: window.aaclipViewer.error, loadedFrom: window.aaclipViewer.loadedFrom, "
                                      "readout: window.aaclipViewer.readout, key: window.aaclipViewer.key} : null")
        if state is not None:
            return state
        time.sleep(0.1)
    raise AssertionError(f"the viewer was not ready after {_WAIT_S} s")


def _cases(report_dir: Path) -> list[dict]:
    text = (report_dir / "viewer" / "cases.js").read_text()
    return json.loads(text[text.index("=") + 1 :].strip().rstrip(";"))["cases"]


def _case(report_dir: Path, class_name: str, label: str | None = None) -> dict:
    return next(c for c in _cases(report_dir) if c["class_name"] == class_name and label in (None, c["label"]))


_VOLUME_STATE = """
const nv = window.aaclipViewer.nv;
return {dims: nv.volumes.map((v) => Array.from(v.hdr.dims).slice(1, 1 + v.hdr.dims[0])),
        names: nv.volumes.map((v) => v.name), calMin: nv.volumes[1].cal_min, opacity: nv.volumes[1].opacity,
        sliceType: nv.opts.sliceType, axial: nv.sliceTypeAxial, truthOpacity: nv.volumes[2].opacity};
"""


def test_report_loads_without_error_and_sorts_cases(browser, sample_report, shots):
    report_dir, manifest, _ = sample_report
    _open(browser, (report_dir / "report.html").as_uri())
    broken = browser.execute_script(
        "return Array.from(document.images).filter((i) => !i.complete || i.naturalWidth === 0).length")
    assert broken == 0
    shots(browser, "report_top.png")
    column = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.cases th')).findIndex((th) => th.textContent === 'case score')")
    read = ("return Array.from(document.querySelectorAll('table.cases tbody tr'))"
            f".map((tr) => parseFloat(tr.cells[{column}].dataset.sort))")
    header = browser.find_elements("css selector", "table.cases th")[column]
    header.click()
    ascending = browser.execute_script(read)
    sources = {json.loads(line)["image_path"] for line in manifest.read_text().splitlines() if line.strip()}
    assert ascending == sorted(ascending) and len(ascending) == len(sources)
    header.click()
    assert browser.execute_script(read) == sorted(ascending, reverse=True)
    link = browser.find_element("css selector", "table.cases a[href^='viewer.html#case=']")
    browser.execute_script("document.getElementById('class-ct').scrollIntoView()")
    shots(browser, "report_tiles.png")
    assert _errors(browser) == []
    link.click()  # the report's link opens that case in the viewer
    assert _wait_viewer(browser)["error"] is None


@pytest.mark.parametrize("class_name", ["ct", "mri"])
def test_volume_viewer_from_disk(browser, sample_report, shots, class_name):
    report_dir, _, _ = sample_report
    case = _case(report_dir, class_name)
    _open(browser, (report_dir / "viewer.html").as_uri() + "#case=" + case["key"])
    state = _wait_viewer(browser)
    assert state["error"] is None and state["key"] == case["key"]
    assert state["loadedFrom"] == "script"  # file:// refuses fetch; the volumes came from volumes.js
    volumes = browser.execute_script(_VOLUME_STATE)
    assert volumes["names"] == ["source.nii.gz", "anomaly.nii.gz", "truth.nii.gz"]
    saves = browser.find_elements("css selector", "#volume-files a")  # the stored bytes, offered as files
    assert [(a.text, a.get_attribute("download")) for a in saves] == [(n, n) for n in volumes["names"]]
    assert volumes["dims"] == [case["dims"]] * 3  # overlay and truth on the source's grid
    # the crosshair starts on the highest anomaly value; the readout gives that voxel and value
    assert state["readout"]["vox"] == case["peak_voxel"]
    assert state["readout"]["anomaly"] == pytest.approx(case["peak_value"], rel=1e-6)
    readout = browser.find_element("id", "readout").text
    assert f"voxel [{', '.join(map(str, case['peak_voxel']))}]" in readout and "anomaly" in readout
    assert volumes["calMin"] == pytest.approx(case["threshold"], rel=1e-5, abs=1e-6)
    # the controls act on NiiVue
    level = case["range"][0] + 0.6 * (case["range"][1] - case["range"][0])
    browser.execute_script("const t = document.getElementById('threshold'); t.value = arguments[0];"
                           "t.dispatchEvent(new Event('input'));", level)
    if class_name == "ct":
        shots(browser, "viewer_volume.png")
    browser.execute_script("const o = document.getElementById('opacity'); o.value = 0.25; o.dispatchEvent(new Event('input'));")
    browser.find_element("css selector", "button[data-view='axial']").click()
    browser.find_element("id", "truth").click()
    after = browser.execute_script(_VOLUME_STATE)
    assert after["calMin"] == pytest.approx(level, rel=1e-2, abs=1e-3)
    assert after["opacity"] == pytest.approx(0.25) and after["truthOpacity"] == 0
    assert after["sliceType"] == after["axial"]
    assert _errors(browser) == []


def test_volume_viewer_over_http_loads_the_one_volumes_file(browser, sample_report):
    report_dir, _, _ = sample_report
    case = _case(report_dir, "mri")
    _QuietHandler.requested.clear()
    handler = functools.partial(_QuietHandler, directory=str(report_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _open(browser, f"http://127.0.0.1:{server.server_address[1]}/viewer.html#case={case['key']}")
        state = _wait_viewer(browser)
        assert state["error"] is None and state["loadedFrom"] == "script"
        assert browser.execute_script(_VOLUME_STATE)["dims"] == [case["dims"]] * 3
        assert _errors(browser) == []
        served = {Path(p).name for p in _QuietHandler.requested}
        assert "volumes.js" in served and not [name for name in served if name.endswith(".nii.gz")]
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requested: list[str] = []

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        _QuietHandler.requested.append(self.path)


def test_image_viewer_has_a_before_after_slider(browser, sample_report, shots):
    report_dir, _, _ = sample_report
    case = _case(report_dir, "retina", "anomalous")
    _open(browser, (report_dir / "viewer.html").as_uri() + "#case=" + case["key"])
    state = _wait_viewer(browser)
    assert state["error"] is None
    sizes = browser.execute_script(
        "return ['before', 'after'].map((id) => [document.getElementById(id).naturalHeight, document.getElementById(id).naturalWidth])")
    assert sizes == [case["dims"], case["dims"]]
    browser.execute_script("const s = document.getElementById('split'); s.value = 30; s.dispatchEvent(new Event('input'));")
    assert browser.execute_script("return document.getElementById('before').style.clipPath") == "inset(0px 70% 0px 0px)"
    shots(browser, "viewer_image.png")
    assert _errors(browser) == []
