"""Per-class normalisation and the image-score rule of spec section 5."""

from __future__ import annotations

import numpy as np
import pytest

from aaclip_med.evaluation.protocol import MinMax
from aaclip_med.scoring import combine_image_score


def test_minmax_maps_range_to_unit_interval_and_constant_to_zero():
    mm = MinMax()
    mm.update(np.array([2.0, 4.0]))
    mm.update(6.0)
    assert mm.apply(np.array([2.0, 4.0, 6.0])).tolist() == [0.0, 0.5, 1.0]
    flat = MinMax()
    flat.update(np.ones(3))
    assert flat.apply(np.ones(2)).tolist() == [0.0, 0.0]


def test_image_score_rule():
    assert combine_image_score(0.8, 0.4, "industrial") == pytest.approx(0.6)
    assert combine_image_score(0.8, 0.4, "medical") == 0.8
    with pytest.raises(ValueError, match="domain"):
        combine_image_score(0.8, 0.4, "dental")
