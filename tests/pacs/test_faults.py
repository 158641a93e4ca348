"""Faults of ``pacs run``: each a one-line error naming the server and the UID; other series go on.

Server down, wrong password, a server answering something that is not DICOM, an overloaded server
(bounded retries), and in one study a good series, a series with a corrupt instance and a
structured report, next to a study UID the server does not have.
"""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from aaclip_med.cli import main
from aaclip_med.inference import InferenceOptions
from aaclip_med.pacs import Credentials, DicomWebServer, ServerError, read_credentials, run_pacs
from tests.pacs.conftest import TINY, corrupt_copy, upload, write_ct, write_sr
from tests.pacs.orthanc import free_port

OPTIONS = InferenceOptions(threshold=0.5, device="cpu")


def _one_line(message: str) -> None:
    assert "\n" not in message and len(message) < 600, message


class _FakeServer(http.server.ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 answering every GET with ``status`` and ``body``; counts requests."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        self.status, self.body, self.content_type = status, body, content_type
        self.requests: list[dict] = []
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/dicom-web"


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.requests.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        self.send_response(self.server.status)
        self.send_header("Content-Type", self.server.content_type)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    servers = []

    def start(status=200, body=b"<html><body>Welcome</body></html>", content_type="text/html"):
        servers.append(_FakeServer(status, body, content_type))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_server_down_is_one_line_naming_server_and_study(tiny_model, tmp_path):
    server = DicomWebServer(f"http://127.0.0.1:{free_port()}/dicom-web", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(ServerError) as info:
        run_pacs(server, tiny_model, tmp_path / "out", studies=["1.2.826.0.1.3680043.8.498.1"], options=OPTIONS)
    message = str(info.value)
    _one_line(message)
    assert "study 1.2.826.0.1.3680043.8.498.1" in message and server.display in message
    assert "connection refused" in message and "after 2 attempts" in message


def test_wrong_password_via_cli(orthanc, client, tmp_path, monkeypatch, capsys):
    first = upload(client, write_ct(tmp_path / "src", seed=3, depth=2))
    monkeypatch.setenv("AACLIP_PACS_USER", orthanc.user)
    monkeypatch.setenv("AACLIP_PACS_PASSWORD", "not-the-password")
    code = main(["pacs", "run", "--url", orthanc.dicomweb_url, "--study", first.StudyInstanceUID,
                 "--out", str(tmp_path / "out"), *TINY])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert err.startswith("aaclip-med pacs: error: study " + first.StudyInstanceUID)
    assert "HTTP 401" in err and "$AACLIP_PACS_PASSWORD" in err and "not-the-password" not in err


def test_not_dicom_answer(fake_server, tiny_model, tmp_path):
    fake = fake_server()  # a web page where the DICOMweb root should be
    with pytest.raises(ServerError) as info:
        run_pacs(DicomWebServer(fake.url, retries=0), tiny_model, tmp_path / "out", series=["1.2.3.4.5"], options=OPTIONS)
    message = str(info.value)
    _one_line(message)
    assert message.startswith("series 1.2.3.4.5: ") and "not DICOM" in message and fake.url in message


def test_overloaded_server_is_retried_a_bounded_number_of_times(fake_server, tiny_model, tmp_path):
    fake = fake_server(503, b"busy", "text/plain")
    with pytest.raises(ServerError) as info:
        run_pacs(DicomWebServer(fake.url, retries=2, backoff=0.01), tiny_model, tmp_path / "out",
                 studies=["1.2.3.4"], options=OPTIONS)
    assert len(fake.requests) == 3  # the first attempt and two retries
    # a work list without that study's series would be silently short: none is stored
    assert str(info.value) == f"cannot build the work list: study 1.2.3.4: {fake.url} answered HTTP 503 Service Unavailable"
    assert not (tmp_path / "out" / "worklist.jsonl").exists()


def test_bearer_token_is_sent_in_the_header(fake_server, tiny_model, tmp_path):
    fake = fake_server(200, b"[]", "application/dicom+json")
    token = read_credentials(environ={"AACLIP_PACS_TOKEN": "tok-123"})
    run_pacs(DicomWebServer(fake.url, token), tiny_model, tmp_path / "out", studies=["1.2.3"], options=OPTIONS)
    assert fake.requests and all(r["authorization"] == "Bearer tok-123" for r in fake.requests)
    record = json.loads((tmp_path / "out" / "pacs_run.json").read_text())
    assert "tok-123" not in json.dumps(record)


def test_bad_series_are_logged_and_the_others_processed(orthanc, client, tiny_model, tmp_path, caplog):
    good = write_ct(tmp_path / "good", seed=4, depth=3)
    first = upload(client, good)
    study = first.StudyInstanceUID
    corrupt = upload(client, corrupt_copy(good, tmp_path / "corrupt"))
    report = upload(client, [write_sr(tmp_path / "sr" / "sr.dcm", study)])
    missing = "1.2.826.0.1.3680043.8.498.999"
    server = DicomWebServer(orthanc.dicomweb_url, Credentials(orthanc.user, orthanc.password))
    caplog.set_level("WARNING", logger="aaclip_med")
    record = run_pacs(server, tiny_model, tmp_path / "out", studies=[study, missing], options=OPTIONS)
    status = {s["series_uid"]: s for s in record["series"]}
    assert status[first.SeriesInstanceUID]["status"] == "done" and len(status[first.SeriesInstanceUID]["stored"]) == 2
    assert status[corrupt.SeriesInstanceUID]["status"] == "failed"
    assert status[report.SeriesInstanceUID]["status"] == "ignored"
    assert record["counts"] == {"done": 1, "skipped": 0, "failed": 2, "ignored": 1, "not processed": 0}
    messages = [r.getMessage() for r in caplog.records]
    expected = {
        corrupt.SeriesInstanceUID: "is corrupt (pixel data 100 bytes of 960 expected)",
        report.SeriesInstanceUID: "not an image series (Comprehensive SR Storage, Modality SR)",
        missing: f"study {missing}: no series on {server.display}",
    }
    for uid, text in expected.items():
        lines = [m for m in messages if uid in m and text in m]
        assert len(lines) == 1, (uid, messages)
        _one_line(lines[0])
    # named by UID, a structured report is an error rather than something to pass over
    again = run_pacs(server, tiny_model, tmp_path / "out2", series=[report.SeriesInstanceUID], options=OPTIONS)
    assert again["series"][0]["status"] == "failed" and "not an image series" in again["series"][0]["error"]
