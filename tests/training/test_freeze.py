"""The freeze helper trains exactly the modules of each stage."""

from __future__ import annotations

import logging

import pytest

from aaclip_med.training import freeze_for_stage
from tests.conftest import make_tiny_model


@pytest.mark.parametrize(("stage", "prefixes"), [(1, ("text_adapters", "text_proj")),
                                                 (2, ("image_adapters", "seg_heads", "det_head"))])
def test_only_stage_modules_require_grad(stage, prefixes, caplog):
    model = make_tiny_model(0)
    with caplog.at_level(logging.INFO, logger="aaclip_med.training.freeze"):
        params = freeze_for_stage(model, stage)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith(prefixes) for name in trainable)
    assert len(params) == len(trainable)
    assert not any(p.requires_grad for p in model.clip.parameters())
    assert f"Stage {stage} trains" in caplog.text


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        freeze_for_stage(make_tiny_model(0), 3)
