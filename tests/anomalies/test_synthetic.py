"""The dispatcher: probability p, every chosen kind used, seeded per sample, clear errors."""

from __future__ import annotations

import pytest
import torch

from aaclip_med.anomalies import RandSyntheticAnomalyd, parse_kinds
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
