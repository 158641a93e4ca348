"""One file-mode policy: every output gets the umask's default permissions (a service account can
read adapters, calibrations and reports like predictions); nothing uses mkstemp's 0600."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import torch

from ._files import write_png

TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--no-progress"]
PACKAGE = Path(__file__).resolve().parents[2] / "aaclip_med"


def _expected_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def test_no_private_temporaries_in_the_package():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if re.search(r"mkstemp\(|NamedTemporaryFile\(|mkdtemp\(", p.read_text())]
    assert offenders == []


def test_outputs_calibration_and_adapters_share_one_mode(tmp_path, cli):
    from aaclip_med.model import save_adapters
    from tests.conftest import make_tiny_model

    rng = np.random.default_rng(0)
    for k in range(2):
        write_png(tmp_path / "normals" / f"n{k}.png", rng.integers(0, 255, (16, 16), dtype=np.uint8))
    write_png(tmp_path / "in" / "case.png", rng.integers(0, 255, (16, 16), dtype=np.uint8))
    out = tmp_path / "out"
    code, _, err = cli("infer", tmp_path / "in", "--calibrate-normals", tmp_path / "normals", "--out", out, *TINY)
    assert code == 0, err
    adapters = save_adapters(make_tiny_model(), tmp_path / "adapters")
    files = [p for p in out.rglob("*") if p.is_file()] + [adapters, adapters.with_suffix(".json")]
    assert {p.name for p in files} >= {"calibration.json", "run.json", "summary.json", "case_blend.png"}
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {oct(_expected_mode())}, modes


def test_local_clip_weights_are_not_announced_as_random(tmp_path, caplog):
    """open_clip builds the model before the file is read; its "initialized randomly" must not show."""
    from aaclip_med.model import AAClipConfig, build_aaclip
    from tests.conftest import make_tiny_model

    path = tmp_path / "clip.bin"
    torch.save(make_tiny_model(seed=4).clip.state_dict(), path)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        model = build_aaclip(AAClipConfig(backbone="aaclip-tiny", pretrained=str(path)))
    assert "initialized randomly" not in caplog.text and "RANDOM" not in caplog.text
    assert f"Loaded CLIP weights {path}" in caplog.text and model.config.pretrained == str(path)
