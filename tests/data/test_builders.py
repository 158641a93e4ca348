import logging

import numpy as np
import pytest
from PIL import Image

from aaclip_med.data.builders import BMAD_SPLITS, VISA_1CLS_TEST, build_manifest, list_dataset_layouts
from aaclip_med.data.errors import DataError
from tests.data import _layouts as layouts
from tests.data._layouts import as_rows


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(path)


def test_layouts_listed_and_unknown():
    assert {"mvtec", "visa", "btad", "mpdd", "bmad", "polyp", "folder", "cohort"} <= set(list_dataset_layouts())
    with pytest.raises(ValueError, match="choose one of"):
        build_manifest("kvasirr", ".")
    with pytest.raises(ValueError, match=r"takes no option\(s\) \['split'\]"):
        build_manifest("polyp", ".", split="test")


def test_mvtec_release_layout(tmp_path):
    expected = layouts.make_mvtec(tmp_path)
    assert sorted(as_rows(build_manifest("mvtec", tmp_path))) == sorted(expected)
    train = build_manifest("mvtec", tmp_path, split="train")
    assert as_rows(train) == [("bottle/train/good/000.png", 0.0, "", "bottle"),
                              ("metal_nut/train/good/000.png", 0.0, "", "metal_nut")]
    with pytest.raises(DataError, match=r"bottle/validation: split folder not found; bottle has \['ground_truth', 'test', 'train'\]"):
        build_manifest("mvtec", tmp_path, split="validation")


def test_mpdd_and_btad_release_layouts(tmp_path):
    expected = layouts.make_mpdd(tmp_path / "MPDD")
    assert sorted(as_rows(build_manifest("mpdd", tmp_path / "MPDD"))) == sorted(expected)
    expected = layouts.make_btad(tmp_path / "BTech_Dataset_transformed")
    assert sorted(as_rows(build_manifest("btad", tmp_path / "BTech_Dataset_transformed"))) == sorted(expected)


def test_mvtec_missing_mask(tmp_path):
    _png(tmp_path / "bottle/test/broken/001.png")
    with pytest.raises(DataError, match="001.png: mask path missing"):
        build_manifest("mvtec", tmp_path)


def test_visa_test_split_is_the_training_set(tmp_path, caplog):
    assert VISA_1CLS_TEST == {"images": 2162, "anomalous": 1200}
    expected = layouts.make_visa(tmp_path)
    records = build_manifest("visa", tmp_path)  # default split: test
    assert as_rows(records) == expected["test"]
    assert sum(r["label"] for r in records) == 2 * layouts.VISA_ANOMALIES
    assert all(r["mask_path"] for r in records if r["label"])
    with caplog.at_level(logging.WARNING):
        train = build_manifest("visa", tmp_path, split="train")
    assert as_rows(train) == expected["train"]
    assert "normal images only" in caplog.text and "--split test" in caplog.text
    with pytest.raises(DataError, match=r"1cls.csv: has no row of split 'val'; its splits are \['test', 'train'\]"):
        build_manifest("visa", tmp_path, split="val")
    with pytest.raises(DataError, match="split csv not found"):
        build_manifest("visa", tmp_path / "split_csv")


def test_bmad_sets_splits_and_parent(tmp_path, caplog):
    expected = layouts.make_bmad(tmp_path)
    assert BMAD_SPLITS == ("train", "valid", "test")
    for set_name in layouts.BMAD_PIXEL_SETS:
        for split in BMAD_SPLITS:
            options = {} if split == "test" else {"split": split}
            assert as_rows(build_manifest("bmad", tmp_path / set_name, **options)) == expected[set_name][split]
    with caplog.at_level(logging.WARNING):
        both = build_manifest("bmad", tmp_path)
    assert [r["class_name"] for r in both] == [n for n in layouts.BMAD_PIXEL_SETS for _ in range(2)]
    assert both[1]["image_path"] == "Brain_AD/test/Ungood/img/00002_68.png"
    assert both[1]["mask_path"] == "Brain_AD/test/Ungood/label/00002_68.png"
    assert "Retina_OCT2017_AD: is an image-level BMAD set" in caplog.text
    with pytest.raises(DataError, match="unknown BMAD split 'val'"):
        build_manifest("bmad", tmp_path / "Brain_AD", split="val")


def test_flat_bmad_set_is_an_error_naming_the_folder(tmp_path):
    layouts.make_bmad(tmp_path)
    with pytest.raises(DataError, match=r"Retina_OCT2017_AD: is an image-level BMAD set .* no pixel masks"):
        build_manifest("bmad", tmp_path / "Retina_OCT2017_AD")
    with pytest.raises(DataError, match="no BMAD set here"):
        build_manifest("bmad", tmp_path / "Brain_AD" / "test")


def test_polyp_single_set_and_test_dataset_parent(tmp_path):
    expected = layouts.make_polyp(tmp_path / "TestDataset")
    for set_name, rows in expected.items():
        assert as_rows(build_manifest("polyp", tmp_path / "TestDataset" / set_name)) == rows
    parent = build_manifest("polyp", tmp_path / "TestDataset")
    assert sorted({r["class_name"] for r in parent}) == sorted(layouts.POLYP_SETS)
    assert len(parent) == sum(layouts.POLYP_SETS.values()) and all(r["label"] == 1.0 for r in parent)
    assert parent[0]["image_path"] == "CVC-300/images/1.png" and parent[0]["mask_path"] == "CVC-300/masks/1.png"
    assert {r["class_name"] for r in build_manifest("polyp", tmp_path / "TestDataset", class_name="colon")} == {"colon"}
    named = build_manifest("polyp", tmp_path / "TestDataset" / "Kvasir", class_name="colon")
    assert {r["class_name"] for r in named} == {"colon"}
    with pytest.raises(DataError, match="no images/ folder"):
        build_manifest("polyp", tmp_path)


def test_kvasir_seg_jpeg_release(tmp_path):
    expected = layouts.make_kvasir_seg(tmp_path / "Kvasir-SEG")
    assert as_rows(build_manifest("polyp", tmp_path / "Kvasir-SEG")) == expected


def test_empty_layout_is_an_error(tmp_path):
    (tmp_path / "bottle" / "test" / "good").mkdir(parents=True)
    with pytest.raises(DataError, match="the mvtec layout found no image here"):
        build_manifest("mvtec", tmp_path)


def test_generic_folder(tmp_path):
    _png(tmp_path / "normal/a.png")
    _png(tmp_path / "abnormal/b.png")
    _png(tmp_path / "abnormal/c.png")
    _png(tmp_path / "masks/b.png", 255)
    records = build_manifest("folder", tmp_path, class_name="skin")
    assert as_rows(records) == [("normal/a.png", 0.0, "", "skin"), ("abnormal/b.png", 1.0, "masks/b.png", "skin"),
                                ("abnormal/c.png", 1.0, "", "skin")]
    assert records[0]["domain"] == "medical"
