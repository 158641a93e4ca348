"""Shared helpers of the hardening suite: the CLI run in-process, and quiet optional-codec warnings."""

from __future__ import annotations

import pytest

from aaclip_med.cli import main


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore:.*nvImageCodec.*:UserWarning")
    config.addinivalue_line("filterwarnings", "ignore:.*RANDOM weights.*:UserWarning")


@pytest.fixture
def cli(capsys):
    """Run ``aaclip-med ARGS`` in this process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
