import json

import pytest

from aaclip_med.data.errors import DataError
from aaclip_med.data.manifest import (
    check_classes,
    read_manifest,
    record_case,
    validate_record,
    write_manifest,
)

PUBLIC_LINES = [  # as written by the authors' public code
    {"image_path": "bottle/test/good/000.png", "label": 0.0, "class_name": "bottle", "mask_path": ""},
    {"image_path": "bottle/test/broken_large/000.png", "label": 1.0, "class_name": "bottle",
     "mask_path": "bottle/ground_truth/broken_large/000_mask.png"},
]


def test_public_file_loads_unchanged(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in PUBLIC_LINES) + "\n")
    assert read_manifest(path) == PUBLIC_LINES


def test_roundtrip_with_optional_fields(tmp_path):
    records = PUBLIC_LINES + [{"image_path": "c/1.nii.gz", "label": 1.0, "class_name": "scan", "mask_path": "m/1.nii.gz",
                               "slice_index": 3, "case_id": "1", "modality": "ct", "domain": "medical"}]
    path = write_manifest(records, tmp_path / "sub" / "out.jsonl")
    assert read_manifest(path) == records
    assert not list(path.parent.glob("*.tmp"))


def test_json_array_and_int_labels(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"image_path": "a.png", "label": 1, "class_name": "x"}]))
    assert read_manifest(path) == [{"image_path": "a.png", "label": 1.0, "class_name": "x", "mask_path": ""}]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"image_path": "a.png", "label": 0}, r"missing key\(s\) \['class_name'\]"),
        ({"image_path": "/etc/a.png", "label": 0, "class_name": "x"}, "absolute"),
        ({"image_path": "../a.png", "label": 0, "class_name": "x"}, "escapes"),
        ({"image_path": "a.png", "label": 1, "class_name": "x", "mask_path": "a/../../m.png"}, "escapes"),
        ({"image_path": "C:\\data\\a.png", "label": 0, "class_name": "x"}, "absolute"),
        ({"image_path": "a.png", "label": 0.5, "class_name": "x"}, "label must be 0"),
    ],
)
def test_bad_lines_named(tmp_path, record, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(PUBLIC_LINES[0]) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=problem) as info:
        read_manifest(path)
    assert "bad.jsonl:2" in str(info.value)


def test_bad_json_and_missing_file(tmp_path):
    (tmp_path / "m.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="m.jsonl:1: not valid JSON"):
        read_manifest(tmp_path / "m.jsonl")
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "none.jsonl")


def test_unknown_class_without_description():
    check_classes(PUBLIC_LINES, {"bottle"})
    with pytest.raises(DataError, match=r"\['bottle'\] have no description"):
        check_classes(PUBLIC_LINES, {"scan"}, "m.jsonl")
    assert validate_record(PUBLIC_LINES[0]) == PUBLIC_LINES[0]


def test_record_case_is_the_case_id_else_the_image_file():
    assert record_case({"image_path": "ct/a.nii.gz", "slice_index": 3, "case_id": "patient7"}) == "patient7"
    assert record_case({"image_path": "ct/a.nii.gz", "slice_index": 3}) == "ct/a.nii.gz"
    assert record_case({"image": [0.0]}) is None
