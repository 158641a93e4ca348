"""Property-based checks of the metrics (hypothesis): invariants any AUROC/AP must satisfy, and
agreement with scikit-learn on small random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from tests.evaluation._values import image_value, pixel_value

FAST = settings(max_examples=40, deadline=None)


@st.composite
def scored_labels(draw, min_size=2, max_size=40):
    """(scores, labels) with both labels present; scores drawn from a small grid so ties occur."""
    labels = draw(st.lists(st.sampled_from([0, 1]), min_size=min_size, max_size=max_size).filter(lambda v: 0 < sum(v) < len(v)))
    scores = draw(st.lists(st.integers(-5, 5), min_size=len(labels), max_size=len(labels)))
    return np.asarray(scores, float) / 2.0, np.asarray(labels)


@FAST
@given(st.integers(1, 20), st.integers(1, 20))
def test_perfect_ranking_is_one_and_reversed_is_zero(n_neg, n_pos):
    labels = np.array([0] * n_neg + [1] * n_pos)
    scores = np.arange(len(labels), dtype=float)
    assert image_value(scores, labels, "auroc") == pytest.approx(1.0)
    assert image_value(scores, labels, "ap") == pytest.approx(1.0)
    assert image_value(scores, labels, "f1_max") == pytest.approx(1.0)
    assert image_value(-scores, labels, "auroc") == pytest.approx(0.0)


@FAST
@given(scored_labels())
def test_reversed_scores_complement(data):
    scores, labels = data
    assert image_value(scores, labels, "auroc") + image_value(-scores, labels, "auroc") == pytest.approx(1.0)


@FAST
@given(scored_labels(), st.sampled_from(["exp", "cube", "affine", "logistic"]))
def test_invariant_to_strictly_increasing_transforms(data, name):
    scores, labels = data
    transform = {
        "exp": np.exp,
        "cube": lambda x: x**3,
        "affine": lambda x: 3.0 * x + 7.0,
        "logistic": lambda x: 1.0 / (1.0 + np.exp(-x)),
    }[name]
    mapped = transform(scores)
    assert image_value(mapped, labels, "auroc") == pytest.approx(image_value(scores, labels, "auroc"))
    assert image_value(mapped, labels, "ap") == pytest.approx(image_value(scores, labels, "ap"))


@FAST
@given(scored_labels())
def test_agrees_with_sklearn_and_in_unit_range(data):
    scores, labels = data
    auroc, ap = image_value(scores, labels, "auroc"), image_value(scores, labels, "ap")
    assert auroc == pytest.approx(roc_auc_score(labels, scores))
    assert ap == pytest.approx(average_precision_score(labels, scores))
    assert 0.0 <= ap <= 1.0 and 0.0 <= auroc <= 1.0


@FAST
@given(st.integers(1, 3), st.integers(2, 6), st.integers(2, 6), st.integers(0, 2**16))
def test_pixel_metrics_agree_with_sklearn(batch, height, width, seed):
    rng = np.random.default_rng(seed)
    maps = rng.integers(0, 6, (batch, height, width)).astype(np.float32)
    masks = rng.random((batch, height, width)) < 0.3
    masks.flat[0], masks.flat[-1] = True, False  # both pixel classes present
    assert pixel_value(maps, masks, "auroc") == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))
    assert pixel_value(maps, masks, "ap") == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()))


@FAST
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=10), st.sampled_from([0, 1]))
def test_single_label_is_undefined_not_a_number(scores, label):
    labels = [label] * len(scores)
    assert image_value(scores, labels, "auroc") is None and image_value(scores, labels, "ap") is None
