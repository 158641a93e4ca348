"""The pieces of an archive run that need no PACS: paging past a server's page limit, shares, derived UIDs."""

from __future__ import annotations

import http.server
import json
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from pydicom.uid import UID

from aaclip_med.identity import OUTPUT_FIELDS
from aaclip_med.pacs import DicomWebServer, ServerError, dicomweb
from aaclip_med.pacs.shares import balanced_shares
from aaclip_med.pacs.uids import result_uids
from aaclip_med.pacs.worklist import WorkItem, read_worklist, request_of, resolve_worklist


class _PagedQido(http.server.ThreadingHTTPServer):
    """QIDO-RS series search over ``rows`` series that answers at most ``page_limit`` per request (as servers
    with a page limit do), honouring ``offset`` unless ``ignore_offset``."""

    def __init__(self, rows: int, page_limit: int, ignore_offset: bool = False) -> None:
        self.rows = [{"0020000D": {"vr": "UI", "Value": [f"1.2.3.{n // 10}"]},
                      "0020000E": {"vr": "UI", "Value": [f"1.2.3.{n // 10}.{n}"]},
                      "00080060": {"vr": "CS", "Value": ["CT"]},
                      "00201209": {"vr": "IS", "Value": [n % 7 + 1]}} for n in range(rows)]
        self.page_limit, self.ignore_offset, self.requests = page_limit, ignore_offset, []
        super().__init__(("127.0.0.1", 0), _PagedHandler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/dicom-web"


class _PagedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        query = parse_qs(urlsplit(self.path).query)
        self.server.requests.append(query)
        offset = 0 if self.server.ignore_offset else int(query.get("offset", ["0"])[0])
        limit = min(int(query.get("limit", ["1000"])[0]), self.server.page_limit)
        body = json.dumps(self.server.rows[offset:offset + limit]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def paged():
    servers = []

    def start(*args, **kwargs):
        servers.append(_PagedQido(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_search_larger_than_the_server_page_limit_is_read_whole(paged, tmp_path):
    fake = paged(rows=45, page_limit=7)
    server = DicomWebServer(fake.url, retries=0)
    worklist = resolve_worklist(tmp_path, server, dicomweb.connect(server), request_of([], [], {"Modality": "CT"}),
                                {"Modality": "CT"}, page_size=20)
    assert len(worklist.items) == 45
    assert [int(q["offset"][0]) for q in fake.requests] == list(range(0, 45, 7)) + [45]  # short pages never stop it
    stored = read_worklist(tmp_path / "worklist.jsonl")
    assert [i.series_uid for i in stored.items] == sorted(i.series_uid for i in worklist.items)
    assert stored.items[0].instances == 1 and sum(i.instances for i in stored.items) == sum(n % 7 + 1 for n in range(45))
    assert stored.server == fake.url and stored.request == {"studies": [], "series": [], "query": "Modality=CT"}


def test_a_server_that_ignores_offset_is_named(paged):
    fake = paged(rows=30, page_limit=10, ignore_offset=True)
    server = DicomWebServer(fake.url, retries=0)
    with pytest.raises(ServerError, match="ignores the QIDO-RS offset, so a search of more than 10 series cannot be"):
        dicomweb.find_series(server, dicomweb.connect(server), filters={"Modality": "CT"}, page_size=10)
    small = paged(rows=4, page_limit=10, ignore_offset=True)  # all of it in the first page: complete
    server = DicomWebServer(small.url, retries=0)
    assert len(dicomweb.find_series(server, dicomweb.connect(server), filters={"Modality": "CT"}, page_size=10)) == 4


def test_refresh_adds_only_new_series_and_another_query_is_refused(paged, tmp_path):
    fake = paged(rows=12, page_limit=50)
    server = DicomWebServer(fake.url, retries=0)
    client, request = dicomweb.connect(server), request_of([], [], {"Modality": "CT"})
    first = resolve_worklist(tmp_path, server, client, request, {"Modality": "CT"})
    fake.rows = fake.rows + [dict(fake.rows[0], **{"0020000E": {"vr": "UI", "Value": ["1.2.3.9.99"]}})]
    reused = resolve_worklist(tmp_path, server, client, request, {"Modality": "CT"})
    assert len(reused.items) == 12 == len(first.items)
    refreshed = resolve_worklist(tmp_path, server, client, request, {"Modality": "CT"}, refresh=True)
    assert len(refreshed.items) == 13 and len(refreshed.refreshed) == 1 and refreshed.created == first.created
    other = request_of([], [], {"Modality": "MR"})
    with pytest.raises(ValueError) as info:
        resolve_worklist(tmp_path, server, client, other, {"Modality": "MR"})
    assert str(info.value) == (f"{tmp_path} holds the run of query Modality=CT; this run asks for query Modality=MR; "
                               "use another --out, or the same request to resume")


def test_shares_are_balanced_by_instances_and_the_same_on_every_rank():
    sizes = [2000, 3, 3, 900, 850, 40, 40, 40, 1200, 5, 600, 610]
    items = [WorkItem("1.2", f"1.2.{n}", "CT", size) for n, size in enumerate(sizes)]
    shares = balanced_shares(items, 3)
    assert sorted(i.series_uid for share in shares for i in share) == sorted(i.series_uid for i in items)
    loads = [sum(i.instances for i in share) for share in shares]
    assert sum(loads) == sum(sizes) and max(loads) <= 4 / 3 * sum(sizes) / 3  # the rule's bound (Graham)
    assert [i.instances for i in shares[0]] == [2000]  # the 2000-slice CT alone on its rank
    # by row index (round robin) rank 0 would get 2000 + 900 + 40 + 5 = 2945 instances
    assert max(loads) < sum(i.instances for i in items[0::3])
    assert balanced_shares(list(reversed(items)), 3) == shares  # order read does not matter
    assert [len(s) for s in balanced_shares(items[:2], 4)] == [1, 1, 0, 0]


def test_result_uids_depend_on_source_and_identity_only():
    identity = {"backbone": "ViT-L-14-336", "image_size": 518, "pretrained": "sha256:ab", "weights_sha256": "cd",
                "adapter_tensors_sha256": "ef", "threshold": 0.5, "modality": "ct", "created": "2026-01-01"}
    seg = result_uids("1.2.3.4", identity, "seg")
    assert seg == result_uids("1.2.3.4", identity | {"created": "2027-05-05", "weights": "/moved/a.safetensors"}, "seg")
    assert len({seg, result_uids("1.2.3.5", identity, "seg"), result_uids("1.2.3.4", identity, "pmap"),
                result_uids("1.2.3.4", identity | {"threshold": 0.6}, "seg")}) == 4
    for uid in seg:
        assert UID(uid).is_valid and uid.startswith("2.25.") and len(uid) <= 64
    assert "threshold" in {f.name for f in OUTPUT_FIELDS}
