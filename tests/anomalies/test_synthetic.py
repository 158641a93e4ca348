"""The dispatcher: probability p, every chosen kind used, seeded per sample, clear errors, late labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from aaclip_med.anomalies import RandAnomaly, RandSyntheticAnomalyd, parse_kinds
from aaclip_med.anomalies import kinds as kinds_module
from aaclip_med.data.pipeline import training_transforms
from tests.anomalies._images import changed, photo


def _sample(image):
    return {"image": image, "mask": torch.zeros(1, *image.shape[1:]), "label": 0.0}


def test_probability_and_kinds():
    image = photo(seed=0)
    transform = RandSyntheticAnomalyd("image", kinds=("perlin", "cutpaste", "lesion"), prob=0.3)
    planted, kinds = 0, set()
    for seed in range(60):
        out = transform.set_random_state(seed)(_sample(image))
        planted += out["label"] == 1.0
        if out["label"] == 1.0:
            kinds.add(transform.kind)
            torch.testing.assert_close(changed(image, out["image"]), out["mask"][0].bool(), rtol=0, atol=0)
        else:
            assert torch.equal(out["image"], image) and not out["mask"].any()
    assert 8 <= planted <= 30  # p = 0.3 of 60: 18 expected
    assert kinds == {"perlin", "cutpaste", "lesion"}


def test_same_seed_same_sample_across_instances():
    image = photo(seed=1)
    outs = [RandSyntheticAnomalyd("image", kinds="perlin,lesion", prob=1.0).set_random_state(11)(_sample(image))
            for _ in range(2)]
    torch.testing.assert_close(outs[0]["image"], outs[1]["image"], rtol=0, atol=0)
    torch.testing.assert_close(outs[0]["mask"], outs[1]["mask"], rtol=0, atol=0)


def test_unknown_kind_lists_the_choices():
    with pytest.raises(ValueError, match="perlin, cutpaste, lesion"):
        parse_kinds("perlin,draem")
    with pytest.raises(ValueError, match="choose from"):
        RandSyntheticAnomalyd("image", kinds="")


class RandDot(RandAnomaly):
    """One changed pixel at (1, 1): never sampled when a large image is resized to 112 (nearest)."""

    def plant(self, image, rng):
        region = np.zeros(image.shape[1:], bool)
        region[1, 1] = True
        return image + 40.0, region


def _large_sample(label: float = 0.0, mask=None):
    image = MetaTensor(torch.full((3, 1000, 1000), 100.0))
    image[:, ::7] = 160.0  # some structure, so the photo preset has a range
    return {"image": image, "mask": torch.zeros(1, 1000, 1000) if mask is None else mask, "label": label}


def test_label_is_decided_after_the_last_geometric_step(monkeypatch):
    monkeypatch.setitem(kinds_module._REGISTRY, "dot", f"{__name__}:RandDot")
    pipeline = training_transforms("photo", 112, stage=1, synthetic_kinds="dot", synthetic_probability=1.0)
    planted = pipeline.transforms[0].set_random_state(0)(_large_sample())
    assert planted["label"] == 1.0 and planted["mask"].sum() == 1  # planted at source resolution
    out = pipeline(_large_sample())
    assert out["mask"].shape == (1, 112, 112) and not out["mask"].any()
    assert out["label"] == 0.0 and out["synthetic"] == "dot"  # the region did not survive the resize
    big = training_transforms("photo", 112, stage=1, synthetic_kinds="cutpaste", synthetic_probability=1.0)
    out = big(_large_sample())
    assert out["label"] == 1.0 and out["mask"].any()  # a CutPaste patch (>= 2 % of the image) survives


def test_a_real_anomaly_keeps_its_manifest_label():
    tiny = torch.zeros(1, 1000, 1000)
    tiny[0, 1, 1] = 1.0  # a real finding smaller than one resized pixel
    out = training_transforms("photo", 112, synthetic_kinds="perlin", synthetic_probability=1.0)(
        _large_sample(1.0, tiny))
    assert out["label"] == 1.0 and "synthetic" not in out
