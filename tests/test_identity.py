"""aaclip_med.identity: one list of what made a result, one comparison, no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aaclip_med import identity
from aaclip_med.identity import (
    HARMLESS_FIELDS,
    MEMORY_FIELDS,
    NETWORK_FIELDS,
    OUTPUT_FIELDS,
    SCORING_FIELDS,
    differences,
    digest,
    network_values,
)


def _record(**changes) -> dict:
    record = network_values(backbone="ViT-L-14-336", image_size=518, pretrained="/models/clip.pt",
                            pretrained_sha256="a" * 64, weights="/models/adapters.safetensors", weights_sha256="b" * 64,
                            adapter_tensors_sha256="c" * 64)
    record |= {"modality": "ct", "domain": "medical", "precision": "fp32", "threshold": None, "dicom": False,
               "pmap_values": None, "calibration": None, "class_name": "liver", "description": "liver",
               "slices": {"axis": "acquisition", "start": 0, "stop": None}, "engine": {"name": "torch", "format": None}}
    return record | changes


def test_importing_it_and_keys_loads_no_torch():
    code = ("import sys, aaclip_med.identity, aaclip_med.keys; "
            "assert 'torch' not in sys.modules and 'monai' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_field_groups_nest():
    names = lambda fields: [f.name for f in fields]  # noqa: E731
    assert names(OUTPUT_FIELDS)[: len(NETWORK_FIELDS)] == names(NETWORK_FIELDS)
    assert set(names(SCORING_FIELDS)) == set(names(NETWORK_FIELDS)) | {"references"}
    assert set(names(MEMORY_FIELDS)) == set(names(NETWORK_FIELDS)) | {"slice_axis"}
    assert "references" in names(OUTPUT_FIELDS) and "engine" in names(OUTPUT_FIELDS)
    assert not set(names(HARMLESS_FIELDS)) & set(names(OUTPUT_FIELDS))  # a field is compared one way only


@pytest.mark.parametrize(("field", "value"), [
    ("references", {"sha256": "d" * 64, "weight": 0.5}),
    ("calibration", {"classes": {"liver": {}}}),
    ("threshold", 2.5),
    ("pmap_values", "probability"),
    ("engine", {"name": "onnxruntime", "format": "onnx"}),
    ("image_size", 336),
    ("adapter_tensors_sha256", "e" * 64),
    ("description", "a healthy liver"),
])
def test_each_output_field_is_refused_by_name(field, value):
    found = differences(_record(), _record(**{field: value}), what="finished work")
    assert found.refused and all(line.startswith(field) for line in found.refused), found.refused
    assert "finished work" in found.refused[0] and "this run" in found.refused[0]


def test_nested_values_name_the_part_that_differs():
    old = _record(references={"sha256": "d" * 64, "weight": 1.0})
    new = _record(references={"sha256": "f" * 64, "weight": 0.5})
    assert [line.split(":")[0] for line in differences(old, new).refused] == ["references.sha256", "references.weight"]


def test_the_same_clip_file_under_another_path_is_the_same_network():
    moved = _record(pretrained="/elsewhere/clip.pt", weights="/elsewhere/adapters.safetensors")
    found = differences(_record(), moved, harmless=HARMLESS_FIELDS, what="finished work")
    assert not found.refused and found.warned == [
        "weights: finished work '/models/adapters.safetensors', this run '/elsewhere/adapters.safetensors'"]
    assert digest(_record()) == digest(moved)
    assert digest(_record()) != digest(_record(threshold=1.0))


def test_fields_an_older_record_does_not_hold_are_not_recorded_not_refused():
    old = {k: v for k, v in _record().items() if k not in ("adapter_tensors_sha256", "engine", "identity_version")}
    found = differences(old, _record())
    assert not found.refused and found.unknown == ["adapter_tensors_sha256", "engine"]
    # but a record of this version without a memory means "no memory": a run with one is refused
    found = differences(_record(), _record(references={"sha256": "d" * 64, "weight": 0.5}))
    assert len(found.refused) == 1 and found.refused[0].startswith("references: stored None, this run {'sha256': 'ddd")


def test_random_weight_markers_are_one_set():
    assert all(identity.is_random_weights(tag) for tag in (None, "", "random", "None", " Random-Init "))
    assert not identity.is_random_weights("openai") and not identity.is_random_weights("/models/clip.pt")
