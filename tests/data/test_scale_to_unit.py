import pytest
import torch
from monai.data import MetaTensor

from aaclip_med.data.intensity import ScaleToUnit
from aaclip_med.data.loading import INTENSITY_MAX


def test_uses_loader_full_scale():
    img = MetaTensor(torch.full((1, 2, 2), 100.0), meta={INTENSITY_MAX: 65535.0})
    assert float(ScaleToUnit()(img).max()) == pytest.approx(100 / 65535)


@pytest.mark.parametrize(("high", "expected"), [(0.5, 0.5), (200.0, 200 / 255), (4000.0, 4000 / 65535)])
def test_guesses_bit_depth(high, expected):
    assert float(ScaleToUnit()(torch.full((1, 2, 2), high)).max()) == pytest.approx(expected)


def test_invalid():
    with pytest.raises(ValueError, match="full_scale"):
        ScaleToUnit(0)
