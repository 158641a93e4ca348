"""The bundle's files, checked without running it: metadata schema, configs, README commands, weights."""

from __future__ import annotations

import hashlib
import json
import re

import jsonschema
import pytest
import yaml

from aaclip_med.model import get_backbone_preset

from .commands import BUNDLE_DIR, COMMANDS
from .conftest import SCHEMA

CONFIGS = BUNDLE_DIR / "configs"
BRIEF_REQUIRED = [
    "version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
    "task", "description", "authors", "copyright", "network_data_format", "intended_use", "references",
]


def _load(name: str) -> dict:
    return json.loads((CONFIGS / name).read_text())


# md5 of MONAI's meta_schema_20240725.json (MONAI-extra-test-data release 0.8.1), as published
SCHEMA_MD5 = "76e1add273836515d0bbb3bc71962474"


def _validator():
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def test_the_shipped_schema_is_monais_file_unchanged():
    assert hashlib.md5(SCHEMA.read_bytes()).hexdigest() == SCHEMA_MD5
    assert json.loads(SCHEMA.read_text())["$schema"] == "https://json-schema.org/draft/2019-09/schema"
    assert _load("metadata.json")["schema"].endswith("/" + SCHEMA.name)  # the file metadata.json names


def test_metadata_validates_against_the_meta_schema():
    errors = [f"{list(e.path)}: {e.message}" for e in _validator().iter_errors(_load("metadata.json"))]
    assert errors == []


def test_verify_metadata_never_downloads(monkeypatch):
    """MONAI's own verify_metadata with the README's --filepath: the shipped file is used, no network."""
    import monai.apps.utils
    from monai.bundle import verify_metadata

    def no_network(*args, **kwargs):
        raise AssertionError(f"verify_metadata tried to download {args[:1]}")

    monkeypatch.setattr(monai.apps.utils, "urlretrieve", no_network)
    monkeypatch.setattr(monai.apps.utils, "_download_with_progress", no_network)
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA), hash_val=SCHEMA_MD5)


def test_metadata_has_every_field_and_the_network_format():
    meta = _load("metadata.json")
    assert [k for k in BRIEF_REQUIRED if k not in meta] == []
    assert meta["version"] in meta["changelog"]
    image = meta["network_data_format"]["inputs"]["image"]
    assert (image["num_channels"], image["spatial_shape"], image["dtype"]) == (3, [518, 518], "float32")
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert (pred["num_channels"], pred["spatial_shape"], pred["dtype"]) == (1, [518, 518], "float32")


def test_metadata_schema_rejects_a_missing_field():
    meta = _load("metadata.json")
    del meta["network_data_format"]["inputs"]["image"]["dtype"]
    errors = list(_validator().iter_errors(meta))
    assert errors and all(list(e.path) == ["network_data_format", "inputs", "image"] for e in errors)
    for error in errors:  # the real schema: the input is anyOf(tensor, number, ...)
        reasons = [sub.message for sub in error.context]
        assert "'dtype' is a required property" in reasons, reasons


def _targets(node):
    if isinstance(node, dict):
        if "_target_" in node:
            yield node["_target_"]
        for value in node.values():
            yield from _targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value)


@pytest.mark.parametrize("name", ["inference.json", "train.json", "evaluate.json"])
def test_configs_instantiate_only_the_library(name):
    targets = list(_targets(_load(name)))
    assert targets and all(t.startswith("aaclip_med.") for t in targets), targets


@pytest.mark.parametrize(("override", "base"), [
    ("multi_gpu_train.json", "train.json"),
    ("multi_gpu_inference.json", "inference.json"),
    ("evaluate.json", "inference.json"),
])
def test_layered_configs_only_add_to_their_base(override, base):
    """multi_gpu_*.json change a few entries of their base; they never copy it."""
    top, below = _load(override), _load(base)
    shared = sorted(set(top) & set(below))
    copied = [k for k in shared if top[k] == below[k]]
    assert copied == [], f"{override} repeats {copied} of {base}"
    if override.startswith("multi_gpu"):
        assert set(top) <= {"device", "finalize"}


@pytest.mark.parametrize("name", ["inference.json", "train.json"])
def test_user_settings_are_top_level(name):
    """The values users override on the command line (`--dataset_dir ...`) exist at the top."""
    config = _load(name)
    wanted = {"dataset_dir", "output_dir", "backbone", "backbone_weights", "image_size", "modality", "device"}
    wanted |= {"class_description"} if name == "inference.json" else {"class_descriptions", "stages"}
    assert wanted <= set(config)


def test_large_files_point_at_the_backbone_preset_weights():
    entries = yaml.safe_load((BUNDLE_DIR / "large_files.yml").read_text())["large_files"]
    preset = get_backbone_preset("ViT-L-14-336")
    clip = next(e for e in entries if e["path"].endswith(preset["weights_file"]))
    assert (clip["url"], clip["hash_val"], clip["hash_type"]) == (preset["weights_url"], preset["weights_sha256"], "sha256")
    assert _load("inference.json")["backbone_weights"].endswith("'/" + clip["path"] + "'")


def test_license_and_models_folder():
    assert "Apache License" in (BUNDLE_DIR / "LICENSE").read_text()[:200]
    assert (BUNDLE_DIR / "models" / "README.md").is_file()
    assert not list((BUNDLE_DIR / "models").glob("*.safetensors"))


def _readme_commands() -> list[str]:
    text = (BUNDLE_DIR / "docs" / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(("python -m monai.bundle", "torchrun"))]


def test_readme_commands_are_the_tested_commands():
    """Every bundle command in the README is run by these tests, and every tested command is in the README."""
    readme = _readme_commands()
    assert len(readme) == len(set(readme))
    assert sorted(readme) == sorted(COMMANDS.values())


def test_readme_covers_the_required_sections():
    text = (BUNDLE_DIR / "docs" / "README.md").read_text()
    for heading in ("What it does", "Data", "Getting the CLIP weights", "Commands", "Outputs", "Limits", "Security"):
        assert f"## {heading}" in text
    assert "trust" in text
