"""A small sample written once per test session (seconds), shared by the demo tests."""

from __future__ import annotations

import pytest

from aaclip_med.demo import generate_sample


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory):
    """Path of the manifest of a 'small' sample (seed 0); tests must not modify it."""
    return generate_sample(tmp_path_factory.mktemp("sample"), size="small", seed=0)
