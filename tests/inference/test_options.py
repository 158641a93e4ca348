"""InferenceOptions: one validated settings object; keyword arguments of run_inference build it."""

from __future__ import annotations

import argparse
import inspect
import math

import pytest

from aaclip_med.inference import InferenceOptions, SliceOptions
from aaclip_med.inference.options import map_range
from aaclip_med.precision import PRECISIONS


def test_defaults_agree_everywhere():
    from aaclip_med import arguments
    from aaclip_med.commands import infer
    from aaclip_med.inference import Predictor, predict_volume, run_inference
    from aaclip_med.inference.options import MIN_FOREGROUND

    options = InferenceOptions()
    assert options.modality == "auto" and options.precision == "auto" and options.resolved_class == "scan"
    assert inspect.signature(Predictor).parameters["modality"].default == "auto"
    assert inspect.signature(Predictor).parameters["precision"].default == "auto"
    assert inspect.signature(predict_volume).parameters["modality"].default == "auto"
    assert "options" in inspect.signature(run_inference).parameters
    assert arguments.PRECISIONS is PRECISIONS
    # the CLI's defaults are the options' own: no flag given builds the default options
    parser = argparse.ArgumentParser()
    infer.add_arguments(parser)
    from_cli = arguments.inference_options_from_args(parser.parse_args(["x", "--out", "o"]))
    assert from_cli.replace(descriptions=None) == options
    assert from_cli.slices.min_foreground == MIN_FOREGROUND


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan"])
def test_non_finite_threshold_refused(value):
    with pytest.raises(ValueError, match="finite"):
        InferenceOptions(threshold=value)


def test_threshold_outside_the_map_range_refused(tiny_model):
    low, high = map_range(len(tiny_model.config.levels), tiny_model.config.logit_scale)
    assert (low, high) == (4 * (1 - 200) / 2, 4 * (1 + 200) / 2)
    InferenceOptions(threshold=high).check_model(tiny_model)
    with pytest.raises(ValueError, match=r"outside the range .* every mask would be empty"):
        InferenceOptions(threshold=1e30).check_model(tiny_model)
    with pytest.raises(ValueError, match="every mask would be full"):
        InferenceOptions(threshold=-1e30).check_model(tiny_model)


def test_bad_values_named():
    with pytest.raises(ValueError, match="unknown modality 'xray'"):
        InferenceOptions(modality="xray")
    with pytest.raises(ValueError, match="domain"):
        InferenceOptions(domain="clinical")
    with pytest.raises(ValueError, match="precision"):
        InferenceOptions(precision="fp8")
    with pytest.raises(ValueError, match="slice range"):
        SliceOptions(start=5, stop=5)
    with pytest.raises(ValueError, match="slice axis"):
        SliceOptions(axis="oblique")
    with pytest.raises(ValueError, match="fraction"):
        SliceOptions(min_foreground=5)
    with pytest.raises(TypeError, match=r"unknown inference option\(s\) \['thresold'\]"):
        InferenceOptions.build(thresold=2.0)


def test_build_and_aliases():
    options = InferenceOptions.build(InferenceOptions(threshold=2.0), modality="mr", slices={"skip_empty": True})
    assert options.threshold == 2.0 and options.modality == "mri" and options.slices.skip_empty
    assert InferenceOptions.build(modality=None).modality == "auto"  # modality=None from a manifest job: auto
    assert InferenceOptions(description="object").resolved_class == "object"
    assert InferenceOptions(class_name="liver", description="object").resolved_class == "liver"


def test_pmap_values_default_and_refusals():
    from aaclip_med.inference import InferenceOptions

    assert InferenceOptions().resolved_pmap_values(None) == "raw"
    assert InferenceOptions(pmap_values="raw").resolved_pmap_values(None) == "raw"
    with pytest.raises(ValueError, match=r"pmap_values='probability': needs a calibration \(calibration FILE or calibrate_normals DIR\)"):
        InferenceOptions(pmap_values="probability").resolved_pmap_values(None)
    with pytest.raises(ValueError, match="pmap_values must be one of"):
        InferenceOptions(pmap_values="percent")
