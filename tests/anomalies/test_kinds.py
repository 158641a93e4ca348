"""The registry of kinds: every name builds its generator; a new kind is one class and one registry line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aaclip_med.anomalies import RandAnomaly, RandSyntheticAnomalyd, generator_class
from aaclip_med.anomalies import kinds as kinds_module
from aaclip_med.anomalies.kinds import SYNTHETIC_KINDS, unused_kind
from aaclip_med.anomalies.synthetic import generator_for
from tests.anomalies._images import changed, photo


class RandStripe(RandAnomaly):
    """A kind written for this test: a bright horizontal stripe (what a new module would hold)."""

    def plant(self, image, rng):
        region = np.zeros(image.shape[1:], bool)
        row = int(rng.integers(0, image.shape[1] - 3))
        region[row : row + 3] = True
        return image + 50.0 * region[None], region


@pytest.mark.parametrize("kind", SYNTHETIC_KINDS)
def test_every_registered_kind_plants_an_exact_anomaly(kind):
    generator = generator_for(kind, "photo", textures=[photo(seed=5)])
    assert isinstance(generator, generator_class(kind)) and isinstance(generator, RandAnomaly)
    image = photo(size=96, seed=2)
    result = generator.set_random_state(0)(image)
    assert result.mask.any()
    torch.testing.assert_close(changed(image, result.image), result.mask[0].bool(), rtol=0, atol=0)


def test_a_new_kind_is_one_registry_line(monkeypatch):
    monkeypatch.setitem(kinds_module._REGISTRY, "stripe", f"{__name__}:RandStripe")
    transform = RandSyntheticAnomalyd("image", kinds="stripe,perlin", prob=1.0)
    seen = set()
    for seed in range(8):
        out = transform.set_random_state(seed)({"image": photo(seed=1), "mask": torch.zeros(1, 64, 64), "label": 0.0})
        seen.add(out["synthetic"])
        assert out["label"] == 1.0
    assert seen == {"stripe", "perlin"}


def test_validation_kind_prefers_lesion_then_the_registry_order():
    assert unused_kind(("perlin", "cutpaste")) == "lesion"
    assert unused_kind(("lesion", "perlin")) == "cutpaste"
    assert unused_kind(SYNTHETIC_KINDS) is None
