"""The bundle's train config turns normal-only training on with one option (no run: parsed only)."""

from __future__ import annotations

import json

from monai.bundle import ConfigParser

from aaclip_med.anomalies import RandSyntheticAnomalyd

from .commands import BUNDLE_DIR


def _parser(dataset_dir, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE_DIR / "configs" / "train.json"))
    parser.update({"dataset_dir": str(dataset_dir), "bundle_root": str(dataset_dir), **overrides})
    return parser


def test_synthetic_anomalies_reach_the_transform_and_the_recorded_config(tmp_path):
    record = {"image_path": "a.png", "label": 0.0, "class_name": "widget", "mask_path": ""}
    (tmp_path / "train.jsonl").write_text(json.dumps(record) + "\n")
    parser = _parser(tmp_path, synthetic_anomalies=["perlin", "cutpaste"], synthetic_probability=0.7)
    config = parser.get_parsed_content("train_config")
    assert config.synthetic.kinds == ("perlin", "cutpaste") and config.synthetic.probability == 0.7
    first = parser.get_parsed_content("train_transform")(1).transforms[0]
    assert isinstance(first, RandSyntheticAnomalyd) and first.kinds == ("perlin", "cutpaste") and first.prob == 0.7
    assert first.generators["perlin"].textures is not None  # textures: the bundle's training images
    from aaclip_med.training import default_stage_config

    for n in (1, 2):  # the normal-only rates, as on the command line
        assert config.stage_config(n).lr == default_stage_config(n, normal_only=True).lr
    off = _parser(tmp_path)
    assert off.get_parsed_content("train_config").synthetic is None
    assert [off.get_parsed_content("train_config").stage_config(n).lr for n in (1, 2)] == [1e-5, 5e-4]
    assert not isinstance(off.get_parsed_content("train_transform")(1).transforms[0], RandSyntheticAnomalyd)
