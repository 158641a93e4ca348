"""Settings of a PACS run: the DICOMweb server, a DIMSE node and credentials.

The inference settings are the package's one :class:`~aaclip_med.inference.InferenceOptions`.

Secrets never travel on the command line (where ``ps`` and shell histories show them): a password
or a bearer token comes from an environment variable or from a file, see :func:`read_credentials`.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aaclip_med.errors import ParameterError

__all__ = [
    "ENV_USER",
    "ENV_PASSWORD",
    "ENV_TOKEN",
    "Credentials",
    "read_credentials",
    "DicomWebServer",
    "DimseNode",
    "PAGE_SIZE",
]

# the page size of QIDO-RS searches (``--page-size``); a server may answer fewer per page (its own
# limit): pages are read until one comes back empty, so a short page never ends the search early
PAGE_SIZE = 500

logger = logging.getLogger(__name__)

ENV_USER = "AACLIP_PACS_USER"
ENV_PASSWORD = "AACLIP_PACS_PASSWORD"
ENV_TOKEN = "AACLIP_PACS_TOKEN"


@dataclass(frozen=True)
class Credentials:
    """HTTP credentials: basic (user + password) or a bearer token, or none.

    Attributes:
        user: user name of HTTP basic authentication.
        password: its password (never shown by ``repr``).
        token: bearer token (never shown by ``repr``).
        source: where the secret came from, for messages (never the secret itself).
    """

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "none"

    def __post_init__(self) -> None:
        if self.token and self.password:
            raise ValueError(f"both a bearer token and a password were given ({self.source}); use one")
        if self.password and not self.user:
            raise ValueError(f"a password was given ({self.source}) but no user: pass user (--user NAME) or set "
                             f"{ENV_USER}")


def _read_secret_file(path: str | os.PathLike, what: str) -> str:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"cannot read the {what} file {path}: {err.strerror or err}") from err
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning("the %s file %s is readable by other users; chmod 600 it", what, path)
    secret = text.strip()
    if not secret or "\n" in secret:
        raise ValueError(f"the {what} file {path} must hold the {what} on one line")
    return secret


def read_credentials(
    user: str | None = None,
    password_file: str | os.PathLike | None = None,
    token_file: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Credentials from files (first) or the environment.

    Args:
        user: HTTP basic user name (default: ``$AACLIP_PACS_USER``).
        password_file: file holding the password on one line (default: ``$AACLIP_PACS_PASSWORD``).
        token_file: file holding a bearer token on one line (default: ``$AACLIP_PACS_TOKEN``).
        environ: the environment (default ``os.environ``).

    Raises:
        ValueError: an unreadable or empty file, a password without a user, or both a password and
            a token.
    """
    env = os.environ if environ is None else environ
    user = user or env.get(ENV_USER) or None
    if password_file or token_file:
        password = _read_secret_file(password_file, "password") if password_file else None
        token = _read_secret_file(token_file, "token") if token_file else None
        source = f"--password-file {password_file}" if password_file else f"--token-file {token_file}"
        return Credentials(user, password, token, source)
    password, token = env.get(ENV_PASSWORD) or None, env.get(ENV_TOKEN) or None
    names = [name for name, value in ((ENV_PASSWORD, password), (ENV_TOKEN, token)) if value]
    return Credentials(user, password, token, " and ".join(f"${n}" for n in names) or "none")


@dataclass(frozen=True)
class DicomWebServer:
    """A DICOMweb service (QIDO-RS, WADO-RS, STOW-RS under one root URL).

    Attributes:
        url: the DICOMweb root, e.g. ``http://pacs:8042/dicom-web`` (Orthanc).
        credentials: see :func:`read_credentials`.
        ca_bundle: PEM file of the certificate authorities to trust for https.
        verify_tls: False turns certificate checks off (logged as a warning; test servers only).
        timeout: seconds to wait for a connection and for each answer.
        retries: further attempts after a connection failure, a timeout or an HTTP 429/502/503/504.
        backoff: seconds before the first retry, doubled before each next one.
    """

    url: str
    credentials: Credentials = Credentials()
    ca_bundle: str | None = None
    verify_tls: bool = True
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ParameterError("url", self.url, "is not an http(s) URL such as http://pacs:8042/dicom-web")
        if parts.username or parts.password:
            raise ParameterError("url", urlunsplit(parts._replace(netloc=parts.hostname or "")), "must not carry "
                                 f"credentials; set {ENV_USER}/{ENV_PASSWORD} or use {{password_file}}")
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise ValueError(f"timeout {self.timeout} must be > 0, retries {self.retries} and backoff {self.backoff} >= 0")
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise ParameterError("ca_bundle", self.ca_bundle, "is not a file")
        if self.ca_bundle and not self.verify_tls:
            raise ParameterError("ca_bundle", self.ca_bundle, "contradicts turning certificate checks off "
                                 "({verify_tls}); drop one")

    @property
    def display(self) -> str:
        """The URL without query or fragment, for messages."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class DimseNode:
    """A DICOM network node (a DIMSE peer): host, port and AE title."""

    host: str
    port: int
    ae_title: str

    def __post_init__(self) -> None:
        if not 0 < int(self.port) < 65536:
            raise ValueError(f"port {self.port} of {self.ae_title}@{self.host} is not in 1..65535")
        if not 0 < len(self.ae_title) <= 16 or "\\" in self.ae_title or not self.ae_title.strip():
            raise ValueError(f"AE title {self.ae_title!r} must be 1 to 16 characters without backslash")

    @classmethod
    def parse(cls, text: str) -> DimseNode:
        """``HOST:PORT:AE`` -> node (the AE title is the part after the last colon)."""
        host, sep1, rest = text.rpartition(":")
        host, sep2, port = host.rpartition(":")
        if not (sep1 and sep2 and host and port.isdigit()):
            raise ParameterError("forward", text, "is not HOST:PORT:AE, e.g. 127.0.0.1:4242:ORTHANC")
        return cls(host, int(port), rest)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"
