"""Modality presets and CT windows are package data behind list_/get_ functions that hand out copies."""

import json
import subprocess
import sys
from importlib import resources

import pytest

from aaclip_med import presets


def test_presets_come_from_the_package_data():
    data = json.loads(resources.files("aaclip_med").joinpath("configs", "modalities", "presets.json").read_text())
    windows = json.loads(resources.files("aaclip_med").joinpath("configs", "modalities", "ct_windows.json").read_text())
    assert set(presets.list_modalities()) == set(data["presets"]) | {f"ct-{w.replace('_', '-')}" for w in windows["windows"]}
    assert presets.get_ct_window("lung") == (-600.0, 1500.0)
    assert presets.get_modality("ct-soft-tissue") == {"kind": "ct", "window": "soft_tissue", "domain": "medical"}


def test_getters_return_copies():
    preset = presets.get_modality("mri")
    preset["upper"] = 50.0
    assert presets.get_modality("mri")["upper"] == 99.0


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match=r"unknown modality 'xray'.*'photo'"):
        presets.get_modality("xray")
    with pytest.raises(ValueError, match=r"unknown CT window 'liverr'.*'liver'"):
        presets.get_ct_window("liverr")
    with pytest.raises(ValueError, match="resolved per source"):
        presets.resolve_modality_name("auto")


def test_auto_and_aliases():
    assert presets.resolve_modality_name("auto", allow_auto=True) == "auto"
    assert presets.resolve_modality_name("mr") == "mri"
    assert presets.modality_choices()[0] == "auto" and "mr" in presets.modality_choices()
    assert [presets.preset_for_dicom_modality(t) for t in ("CT", "MR", "OPT", "OCT", "ES", "XC", "US", None)] == [
        "ct", "mri", "oct", "oct", "endoscopy", "photo", None, None]


def test_registry_imports_no_torch():
    code = "import sys, aaclip_med.presets as p; p.list_modalities(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_one_default_domain_per_preset():
    """Inference, export and training read a preset's domain from its entry, with no fallback of their own."""
    import argparse

    from aaclip_med.commands.train import _domain
    from aaclip_med.presets import default_domain, modality_choices

    domains = {name: default_domain(name) for name in modality_choices() if name != "auto"}
    assert domains["photo"] == "industrial" and domains["ct-lung"] == "medical" and domains["oct"] == "medical"
    assert {name for name, domain in domains.items() if domain == "industrial"} == {"photo"}
    for name in ("photo", "mri"):
        assert _domain(argparse.Namespace(domain=None, modality=name, manifest="none.jsonl")) == domains[name]
    with pytest.raises(ValueError, match="unknown modality 'xray'"):
        default_domain("xray")
