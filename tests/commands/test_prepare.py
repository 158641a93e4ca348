"""``prepare --check-masks``: every anomalous record needs a mask with anomalous pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image

from aaclip_med.commands.prepare import check_masks


def test_anomalous_records_without_a_mask_or_with_an_empty_one_are_flagged(tmp_path, caplog):
    Image.fromarray(np.pad(np.full((2, 2), 255, np.uint8), 3)).save(tmp_path / "good_mask.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "empty_mask.png")
    records = [
        {"image_path": "a.png", "label": 1.0, "class_name": "x", "mask_path": "good_mask.png"},
        {"image_path": "b.png", "label": 1.0, "class_name": "x", "mask_path": "empty_mask.png"},
        {"image_path": "c.png", "label": 1.0, "class_name": "x", "mask_path": ""},
        {"image_path": "d.png", "label": 0.0, "class_name": "x", "mask_path": ""},
    ]
    summary = check_masks(records, tmp_path)
    assert summary == {"masks": 2, "anomalous_pixels": 4, "empty": ["b.png"], "missing": ["c.png"]}
    assert "anomalous image c.png has no mask (no mask_path)" in caplog.text
