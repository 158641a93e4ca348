"""The OHIF viewer (its prebuilt ``dist/`` from npm ``@ohif/app``) and Orthanc's DICOMweb on one origin.

Test-only: ``.ci/run`` fetches the pinned ``@ohif/app`` with ``npm pack``, checks the tarball's
checksum, extracts ``dist/`` and exports ``AACLIP_OHIF_DIST``; nothing of OHIF enters the package.

:class:`OhifServer` is a small threaded HTTP server: ``/app-config.js`` is our configuration (one
DICOMweb data source at ``/dicom-web`` of the same origin, no study list), ``/dicom-web/...`` is
proxied to the test Orthanc with its credentials, every other path is a file of ``dist/``, and
paths that are not files (``/viewer``) get ``index.html`` (OHIF routes them in the page).
"""

from __future__ import annotations

import http.server
import os
import threading
import urllib.error
import urllib.request
from base64 import b64encode
from functools import partial
from pathlib import Path

from tests._tools import skip_or_fail

__all__ = ["OhifServer", "require_ohif_dist", "OHIF_VERSION"]

OHIF_VERSION = "3.13.2"  # = .ci/run's pin

# One DICOMweb source on our origin; Orthanc answers includefield and serves bulk data by URI.
APP_CONFIG = """localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']));  // no onboarding tour
window.config = {
  routerBasename: '/',
  extensions: [],
  modes: [],
  showStudyList: false,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  investigationalUseDialog: { option: 'never' },
  disableConfirmationPrompts: true,
  defaultDataSourceName: 'orthanc',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'orthanc',
    configuration: {
      friendlyName: 'test Orthanc',
      name: 'orthanc',
      wadoUriRoot: window.location.origin + '/dicom-web',
      qidoRoot: window.location.origin + '/dicom-web',
      wadoRoot: window.location.origin + '/dicom-web',
      qidoSupportsIncludeField: false,
      imageRendering: 'wadors',
      thumbnailRendering: 'wadors',
      enableStudyLazyLoad: true,
      supportsFuzzyMatching: false,
      supportsWildcard: true,
      omitQuotationForMultipartRequest: true,
      bulkDataURI: { enabled: true },
    },
  }],
};
"""

_TYPES = {".js": "application/javascript", ".wasm": "application/wasm", ".css": "text/css", ".json": "application/json",
          ".html": "text/html", ".svg": "image/svg+xml", ".woff2": "font/woff2"}


def require_ohif_dist() -> Path:
    """``$AACLIP_OHIF_DIST`` (OHIF's ``dist/`` folder); else skip, or fail when ``CI`` is set."""
    value = os.environ.get("AACLIP_OHIF_DIST", "")
    dist = Path(value) if value else None
    if dist is not None and (dist / "index.html").is_file():
        return dist
    problem = (f"AACLIP_OHIF_DIST={value!r} holds no index.html" if value else "AACLIP_OHIF_DIST is not set")
    msg = (f"{problem}: the OHIF browser test needs @ohif/app@{OHIF_VERSION}'s dist/ (.ci/run fetches it with "
           "npm pack and sets AACLIP_OHIF_DIST)")
    skip_or_fail(msg)


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **_TYPES}

    def __init__(self, *args, upstream: str, authorization: str, **kwargs) -> None:
        self.upstream, self.authorization = upstream, authorization
        super().__init__(*args, **kwargs)

    def log_message(self, *args) -> None:  # quiet: the test reports what matters
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path.startswith("/dicom-web"):
            return self._proxy()
        if path == "/app-config.js":
            return self._send(200, APP_CONFIG.encode(), "application/javascript")
        if not Path(self.translate_path(path)).is_file():
            self.path = "/index.html"  # a client-side route of the single-page app
        return super().do_GET()

    def _proxy(self) -> None:
        request = urllib.request.Request(self.upstream + self.path)
        request.add_header("Authorization", self.authorization)
        if self.headers.get("Accept"):
            request.add_header("Accept", self.headers["Accept"])
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, body, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            status, body, kind = err.code, err.read(), err.headers.get("Content-Type", "text/plain")
        self._send(status, body, kind)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class OhifServer:
    """OHIF's ``dist`` and the Orthanc at ``upstream`` (its root URL) on one local origin.

    Args:
        dist: OHIF's ``dist/`` folder.
        upstream: Orthanc's HTTP root (``/dicom-web/...`` is appended as requested).
        user, password: Orthanc's credentials, added to each proxied request.
    """

    def __init__(self, dist: Path, upstream: str, user: str, password: str) -> None:
        token = b64encode(f"{user}:{password}".encode()).decode()
        handler = partial(_Handler, directory=str(dist), upstream=upstream.rstrip("/"),
                          authorization=f"Basic {token}")
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> OhifServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# The viewer's own state, read in the page (``window.services``: OHIF's services; ``window.cornerstone``).
# arguments: (kind "seg" | "pm", SeriesInstanceUID). Once the CT is shown, it
# does what a double-click on its thumbnail does, once; then it answers {ready: false, why} until loaded.
VIEWER_STATE_JS = r"""
const [kind, seriesUid] = arguments;
try { return viewerState(kind, seriesUid); } catch (error) {  // services still starting up
  return {ready: false, why: 'not ready: ' + error};
}
function viewerState(kind, seriesUid) {
const s = window.services, cs = window.cornerstone;
if (!s || !cs || !s.displaySetService) return {ready: false, why: 'viewer not started'};
const target = s.displaySetService.getActiveDisplaySets().find(d => d.SeriesInstanceUID === seriesUid);
const vid = s.viewportGridService.getState().activeViewportId;
const vp = vid && s.cornerstoneViewportService.getCornerstoneViewport(vid);
if (!target) return {ready: false, why: 'series not listed yet'};
if (!vp || !vp.getFrameOfReferenceUID || !vp.getFrameOfReferenceUID()) return {ready: false, why: 'CT not shown yet'};
const uid = target.displaySetInstanceUID;
window.__aaclipAsked = window.__aaclipAsked || {};
if (!window.__aaclipAsked[uid]) {
  window.__aaclipAsked[uid] = true;
  const update = s.hangingProtocolService.getViewportsRequireUpdate(vid, uid);
  window.commandsManager.run('setDisplaySetsForViewports', {viewportsToUpdate: update});
  return {ready: false, why: 'asked to show it'};
}
if (!target.isLoaded) return {ready: false, why: 'loading'};
const sop = id => (String(id).match(/instances\/([0-9.]+)/) || [])[1];
const stats = (values, from, count) => {
  let nonzero = 0, indexSum = 0, max = -Infinity, sum = 0;
  for (let i = 0; i < count; i++) {
    const v = values[from + i];
    if (v) { nonzero++; indexSum += i; }
    if (v > max) max = v;
    sum += v;
  }
  return {nonzero, indexSum, max, mean: sum / count};
};
const base = {ready: true, viewportType: vp.type, viewportFrameOfReference: vp.getFrameOfReferenceUID(),
              frameOfReference: target.instance && target.instance.FrameOfReferenceUID, label: target.label,
              modality: target.Modality};
if (kind === 'seg') {
  const seg = s.segmentationService.getSegmentation(uid);
  const reps = s.segmentationService.getSegmentationRepresentations(vid, {segmentationId: uid});
  if (!seg || !reps.length || !seg.representationData.Labelmap) return {ready: false, why: 'no labelmap yet'};
  const perSource = {};
  for (const id of seg.representationData.Labelmap.imageIds) {
    const image = cs.cache.getImage(id);
    if (!image) return {ready: false, why: 'labelmap image not cached yet'};
    const values = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
    perSource[sop(image.referencedImageId)] = stats(values, 0, values.length);
  }
  return {...base, representation: reps[0].type, segments: Object.values(seg.segments).map(x => x.label), perSource};
}
const volume = cs.cache.getVolume(uid);
if (!volume || !vp.getActors().some(a => a.referencedId === uid)) return {ready: false, why: 'PM volume not on the viewport yet'};
const reference = cs.cache.getVolume(target.getReferencedVolumeId());
const [nx, ny, nz] = volume.dimensions;
const values = volume.voxelManager.getCompleteScalarDataArray();
const perSource = {};
reference.imageIds.forEach((id, k) => { perSource[sop(id)] = stats(values, k * nx * ny, nx * ny); });
let low = Infinity, high = -Infinity;
for (const v of values) { if (v < low) low = v; if (v > high) high = v; }
vp.render();  // OHIF draws a newly added layer only on the next render (a scroll, otherwise)
return {...base, volumeFrameOfReference: volume.metadata.FrameOfReferenceUID, dimensions: volume.dimensions,
        actors: vp.getActors().map(a => a.referencedId), voiRange: vp.getProperties(uid).voiRange,
        colormap: (vp.getProperties(uid).colormap || {}).name, low, high, perSource};
}
"""
