"""Inference knows exported networks by their type (ExportedNetwork), not by probing a model for methods."""

from __future__ import annotations

import pytest
import torch

from aaclip_med.inference import InferenceOptions, Predictor
from aaclip_med.inference.network import ExportedConfig, ExportedNetwork, fill_options
from aaclip_med.inference.run_info import run_record
from aaclip_med.model.aaclip import Prediction


class _Graph(ExportedNetwork):
    """A fixed graph whose map is the mean of the image's channels (so its output is known)."""

    def __init__(self) -> None:
        self.config = ExportedConfig("aaclip-tiny", 112, "random", (1, 2, 3, 4), 100.0)
        self.precision = "fp32"
        self.checked: list[InferenceOptions] = []

    @property
    def recorded_identity(self) -> dict:
        return {"backbone": "aaclip-tiny", "engine": {"name": "probe", "format": "none", "precision": "fp32"}}

    def fill_options(self, options):
        return options.replace(class_name="lesion") if not options.class_name else options

    def check_options(self, options) -> None:
        self.checked.append(options)
        if options.domain == "industrial":
            raise ValueError("domain: the exported graph 'medical', this run 'industrial'")

    def text_anchors(self, description: str) -> torch.Tensor:
        return torch.zeros(0)

    def __call__(self, images, anchors, domain) -> Prediction:
        maps = images.mean(dim=1)  # (B, S, S)
        peak = maps.flatten(1).amax(dim=1)
        return Prediction(maps, peak, torch.zeros_like(peak), peak)


def test_the_predictor_runs_an_exported_network_as_it_is():
    graph = _Graph()
    predictor = Predictor(graph, "ct", device="cpu", precision="fp32")
    assert predictor._fast is graph  # no fast torch path around it
    images = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    pred = predictor.predict_tensor(images, "scan")
    torch.testing.assert_close(pred.anomaly_map, images.mean(dim=1))


def test_options_are_filled_and_checked_by_type_only():
    graph = _Graph()
    assert fill_options(graph, InferenceOptions()).class_name == "lesion"
    InferenceOptions(domain="medical").check_model(graph)
    with pytest.raises(ValueError, match="domain: the exported graph 'medical', this run 'industrial'"):
        InferenceOptions(domain="industrial").check_model(graph)
    assert len(graph.checked) == 2

    class LooksLikeOne:  # has the methods, is not an ExportedNetwork: not probed
        config = None

        def fill_options(self, options):
            raise AssertionError("probed")

        def check_options(self, options):
            raise AssertionError("probed")

    assert fill_options(LooksLikeOne(), InferenceOptions()).class_name is None
    InferenceOptions().check_model(LooksLikeOne())


def test_run_json_records_what_ran_the_exported_network():
    record = run_record(_Graph(), None, {})
    assert record["engine"] == {"name": "probe", "format": "none", "precision": "fp32"}
    assert (record["backbone"], record["image_size"]) == ("aaclip-tiny", 112)
