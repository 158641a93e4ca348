from collections import Counter

import pytest

from aaclip_med.data.errors import DataError
from aaclip_med.data.kshot import sample_k_shot


def _records():
    return [{"image_path": f"{c}/{n}.png", "label": float(n % 3 == 0), "class_name": c, "mask_path": ""}
            for c in ("a", "b") for n in range(30)]


@pytest.mark.parametrize("k", [1, 2, 4, 5, 8])
def test_exact_counts(k):
    out = sample_k_shot(_records(), k, seed=1)
    counts = Counter((r["class_name"], r["label"]) for r in out)
    for c in ("a", "b"):
        assert counts[(c, 0.0)] == k // 2 and counts[(c, 1.0)] == k - k // 2


def test_seeded_and_different_seeds():
    assert sample_k_shot(_records(), 4, seed=3) == sample_k_shot(_records(), 4, seed=3)
    assert sample_k_shot(_records(), 8, seed=3) != sample_k_shot(_records(), 8, seed=4)


def test_not_enough():
    with pytest.raises(DataError, match="class 'a' has 10 anomalous samples, 24-shot needs 12"):
        sample_k_shot(_records(), 24)
    with pytest.raises(ValueError, match="k must be"):
        sample_k_shot(_records(), 0)


def test_single_label_classes_take_all_k_from_that_label():
    polyp = [{"image_path": f"p/{n}.png", "label": 1.0, "class_name": "Kvasir", "mask_path": f"m/{n}.png"}
             for n in range(10)]
    normal_only = [{"image_path": f"v/{n}.png", "label": 0.0, "class_name": "candle", "mask_path": ""}
                   for n in range(10)]
    out = sample_k_shot(polyp + normal_only + _records(), 4, seed=2)
    counts = Counter((r["class_name"], r["label"]) for r in out)
    assert counts == {("Kvasir", 1.0): 4, ("candle", 0.0): 4, ("a", 0.0): 2, ("a", 1.0): 2, ("b", 0.0): 2, ("b", 1.0): 2}
    with pytest.raises(DataError, match="class 'Kvasir' has 10 anomalous samples, 16-shot needs 16"):
        sample_k_shot(polyp, 16)


def test_draw_of_mixed_classes_is_unchanged_by_single_label_classes():
    mixed = sample_k_shot(_records(), 4, seed=9)
    polyp = [{"image_path": f"p/{n}.png", "label": 1.0, "class_name": "zz", "mask_path": ""} for n in range(5)]
    assert [r for r in sample_k_shot(_records() + polyp, 4, seed=9) if r["class_name"] != "zz"] == mixed
