"""A real Orthanc (Debian packages ``orthanc`` and ``orthanc-dicomweb``) for the PACS tests and benchmark.

Started on 127.0.0.1 with a temporary configuration: free HTTP and DICOM ports, storage in a temp
folder, the DICOMweb plugin, a user/password, and the DICOM nodes it may send to. Its base
configuration is the one shown in docs/pacs.md, so the documented configuration is the tested one.
Stopped by its PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from base64 import b64encode
from pathlib import Path

__all__ = ["Orthanc", "find_orthanc", "find_dicomweb_plugin", "free_port", "docs_config"]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "pacs.md"
_PLUGIN_NAMES = ("libOrthancDicomWeb.so",)
_PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")


def find_orthanc() -> str | None:
    """Path of the ``Orthanc`` executable (Debian installs it in /usr/sbin), or None."""
    return shutil.which("Orthanc", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]))


def find_dicomweb_plugin() -> Path | None:
    """The DICOMweb plugin's shared library, from the usual folders or ``dpkg -L orthanc-dicomweb``."""
    for folder in _PLUGIN_DIRS:
        for path in sorted(Path(folder).glob("libOrthancDicomWeb.so*")):
            return path
    if shutil.which("dpkg"):
        listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True).stdout
        for line in listing.splitlines():
            if re.search(r"libOrthancDicomWeb\.so", line) and Path(line).is_file():
                return Path(line)
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def docs_config() -> dict:
    """The Orthanc configuration of docs/pacs.md (its only ``json`` block)."""
    blocks = re.findall(r"^```json\n(.*?)^```", DOCS.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 1, f"{DOCS} should show exactly one Orthanc configuration (json block)"
    return json.loads(blocks[0])


class Orthanc:
    """One Orthanc process with its own configuration and storage under ``root``.

    Args:
        root: a temporary folder (configuration, storage, log).
        user, password: the one registered HTTP user.
        modalities: DICOM nodes Orthanc may send to: name -> (AE title, host, port).
    """

    ae_title = "ORTHANC"

    def __init__(self, root: Path, user: str = "alice", password: str = "s3cret-pw",
                 modalities: dict[str, tuple[str, str, int]] | None = None) -> None:
        self.root, self.user, self.password = Path(root), user, password
        self.http_port, self.dicom_port = free_port(), free_port()
        self.modalities = modalities or {}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def _config(self, plugin: Path) -> dict:
        config = docs_config()
        storage = self.root / "storage"
        config.update(
            Name="aaclip-test", StorageDirectory=str(storage), IndexDirectory=str(storage),
            HttpPort=self.http_port, DicomPort=self.dicom_port, DicomAet=self.ae_title,
            RegisteredUsers={self.user: self.password}, Plugins=[str(plugin)],
            DicomModalities={name: list(node) for name, node in self.modalities.items()},
        )
        return config

    def start(self, timeout: float = 30.0) -> Orthanc:
        executable, plugin = find_orthanc(), find_dicomweb_plugin()
        if executable is None or plugin is None:
            raise FileNotFoundError("Orthanc or its DICOMweb plugin is not installed "
                                    "(apt-get install orthanc orthanc-dicomweb)")
        self.root.mkdir(parents=True, exist_ok=True)
        config_path = self.root / "orthanc.json"
        config_path.write_text(json.dumps(self._config(plugin), indent=2))
        log = open(self.root / "orthanc.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([executable, str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self._log = log
        self._wait(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: {self.log_tail()}")
            try:
                self.get("/system")
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"Orthanc did not answer on {self.url} within {timeout} s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        path = self.root / "orthanc.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""

    def _request(self, path: str, data: bytes | None = None, method: str | None = None) -> object:
        request = urllib.request.Request(self.url + path, data=data, method=method)
        token = b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def get(self, path: str) -> object:
        """GET a REST resource of Orthanc (JSON)."""
        return self._request(path)

    def post(self, path: str, body: object) -> object:
        """POST to a REST resource of Orthanc: a str as it is (e.g. /tools/lookup), anything else as JSON."""
        return self._request(path, (body if isinstance(body, str) else json.dumps(body)).encode())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()
