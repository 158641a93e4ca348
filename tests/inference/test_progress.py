"""Progress bars: one over the cases, one over the slices of a case; only on a terminal, off on request."""

from __future__ import annotations

import io
import sys

from aaclip_med.inference import run_inference
from tests.inference.conftest import IntensityModel


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(tmp_path, nifti_cases, monkeypatch, stream, name, **options) -> str:
    monkeypatch.setattr(sys, "stderr", stream)
    run_inference([nifti_cases], tmp_path / name, IntensityModel(), modality="ct", batch_size=2, device="cpu", **options)
    monkeypatch.undo()
    return stream.getvalue()


def test_bars_per_case_and_per_slice_batch_on_a_terminal(tmp_path, nifti_cases, monkeypatch):
    text = _run(tmp_path, nifti_cases, monkeypatch, _Terminal(), "tty")
    assert "infer" in text and "3/3" in text and "case" in text  # the cases
    assert "0/5 [" in text and "slice/s" in text  # the 5 slices of a case, in batches of 2


def test_no_bars_when_asked_or_not_a_terminal(tmp_path, nifti_cases, monkeypatch):
    assert _run(tmp_path, nifti_cases, monkeypatch, _Terminal(), "off", progress=False) == ""
    assert _run(tmp_path, nifti_cases, monkeypatch, io.StringIO(), "pipe") == ""
