"""The memory tests use the adaptation tests' tiny network, normal images and the memory built from them."""

from tests.adaptation.conftest import (  # noqa: F401 - fixtures and helpers shared with tests/adaptation
    bank,
    model_identity,
    normal_slice,
    predictor,
    references,
    with_planted_anomaly,
)
