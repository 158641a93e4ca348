import pytest
import torch

from aaclip_med.data.intensity import MRINormalize


def test_percentiles_over_foreground_background_zero():
    img = torch.zeros(1, 10, 10)
    img[0, 2:8, 2:8] = torch.linspace(100, 200, 36).reshape(6, 6)
    out = MRINormalize(lower=0, upper=100)(img)
    assert float(out[0, 0, 0]) == 0.0
    assert float(out[0, 2, 2]) == 0.0 and float(out[0, 7, 7]) == pytest.approx(1.0)
    assert float(out.max()) <= 1.0


def test_clips_outliers_and_empty_slice():
    img = torch.zeros(1, 1, 102)
    img[0, 0, 1:] = torch.arange(1, 102, dtype=torch.float32)
    img[0, 0, -1] = 1e6  # a hot spot
    out = MRINormalize(lower=1, upper=99)(img)
    assert float(out[0, 0, -1]) == 1.0 and 0.4 < float(out[0, 0, 50]) < 0.6
    assert float(MRINormalize()(torch.zeros(1, 3, 3)).max()) == 0.0
    with pytest.raises(ValueError, match="lower < upper"):
        MRINormalize(lower=50, upper=10)
