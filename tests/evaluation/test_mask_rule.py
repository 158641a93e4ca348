"""Kvasir-SEG's JPEG masks are counted alike by prepare, the training dataset and evaluation."""

from __future__ import annotations

import numpy as np
from PIL import Image

from aaclip_med.commands.prepare import check_masks
from aaclip_med.data.builders import build_manifest
from aaclip_med.data.dataset import ManifestDataset
from aaclip_med.evaluation.predictions import Sample, load_mask
from tests.data import _layouts as layouts


def _sample(record: dict) -> Sample:
    return Sample(index=0, class_name=record["class_name"], label=record["label"], image_path=record["image_path"],
                  mask_path=record["mask_path"], slice_index=None, map_path="", model_map_path="", image_score=0.0,
                  global_score=0.0, map_max=0.0, domain="medical")


def test_jpeg_masks_count_the_same_everywhere(tmp_path):
    root = tmp_path / "Kvasir-SEG"
    layouts.make_kvasir_seg(root)
    records = build_manifest("polyp", root)
    prepared = check_masks(records, root)["anomalous_pixels"]
    dataset = ManifestDataset(records, root)
    trained = sum(int(dataset[n]["mask"].sum()) for n in range(len(records)))
    evaluated = sum(int(load_mask(root, _sample(r), layouts.SIZE).sum()) for r in records)
    non_zero = sum(int((np.asarray(Image.open(root / r["mask_path"])) != 0).sum()) for r in records)
    assert prepared == trained == evaluated > 0
    assert non_zero > prepared  # JPEG rings: a non-zero rule would count more than was drawn
