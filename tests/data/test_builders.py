import numpy as np
import pytest
from PIL import Image

from aaclip_med.data.builders import build_manifest, list_dataset_layouts
from aaclip_med.data.errors import DataError


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(path)


def _pairs(records):
    return [(r["image_path"], r["label"], r["class_name"], r["mask_path"]) for r in records]


def test_layouts_listed_and_unknown():
    assert {"mvtec", "visa", "btad", "mpdd", "bmad", "polyp", "folder", "cohort"} <= set(list_dataset_layouts())
    with pytest.raises(ValueError, match="choose one of"):
        build_manifest("kvasirr", ".")
    with pytest.raises(ValueError, match=r"takes no option\(s\) \['split'\]"):
        build_manifest("polyp", ".", split="test")


@pytest.mark.parametrize("name", ["mvtec", "mpdd"])
def test_mvtec_like(tmp_path, name):
    _png(tmp_path / "bottle/train/good/000.png")
    _png(tmp_path / "bottle/test/good/000.png")
    _png(tmp_path / "bottle/test/broken/001.png")
    _png(tmp_path / "bottle/ground_truth/broken/001_mask.png", 255)
    assert _pairs(build_manifest(name, tmp_path)) == [
        ("bottle/test/broken/001.png", 1.0, "bottle", "bottle/ground_truth/broken/001_mask.png"),
        ("bottle/test/good/000.png", 0.0, "bottle", ""),
    ]
    assert len(build_manifest(name, tmp_path, split="train")) == 1


def test_mvtec_missing_mask(tmp_path):
    _png(tmp_path / "bottle/test/broken/001.png")
    with pytest.raises(DataError, match="001.png: mask path missing"):
        build_manifest("mvtec", tmp_path)


def test_btad(tmp_path):
    _png(tmp_path / "01/test/ok/a.png")
    _png(tmp_path / "01/test/ko/b.png")
    _png(tmp_path / "01/ground_truth/ko/b.png", 255)
    assert _pairs(build_manifest("btad", tmp_path)) == [("01/test/ko/b.png", 1.0, "01", "01/ground_truth/ko/b.png"),
                                                        ("01/test/ok/a.png", 0.0, "01", "")]


def test_visa(tmp_path):
    (tmp_path / "split_csv").mkdir()
    (tmp_path / "split_csv/1cls.csv").write_text(
        "object,split,label,image,mask\n"
        "candle,train,normal,candle/Data/Images/Normal/0.JPG,\n"
        "candle,test,normal,candle/Data/Images/Normal/1.JPG,\n"
        "candle,test,anomaly,candle/Data/Images/Anomaly/2.JPG,candle/Data/Masks/Anomaly/2.png\n"
    )
    assert _pairs(build_manifest("visa", tmp_path)) == [
        ("candle/Data/Images/Normal/1.JPG", 0.0, "candle", ""),
        ("candle/Data/Images/Anomaly/2.JPG", 1.0, "candle", "candle/Data/Masks/Anomaly/2.png"),
    ]
    with pytest.raises(DataError, match="split csv not found"):
        build_manifest("visa", tmp_path / "split_csv")


def test_bmad_single_and_parent(tmp_path):
    for name in ("BrainMRI", "RetinaOCT"):
        _png(tmp_path / name / "test/good/img/1.png")
        _png(tmp_path / name / "test/Ungood/img/2.png")
        _png(tmp_path / name / "test/Ungood/label/2.png", 255)
    single = build_manifest("bmad", tmp_path / "BrainMRI")
    assert _pairs(single) == [("test/good/img/1.png", 0.0, "BrainMRI", ""),
                              ("test/Ungood/img/2.png", 1.0, "BrainMRI", "test/Ungood/label/2.png")]
    both = build_manifest("bmad", tmp_path)
    assert [r["class_name"] for r in both] == ["BrainMRI", "BrainMRI", "RetinaOCT", "RetinaOCT"]
    assert both[3]["image_path"] == "RetinaOCT/test/Ungood/img/2.png"
    assert both[3]["mask_path"] == "RetinaOCT/test/Ungood/label/2.png"


def test_polyp(tmp_path):
    _png(tmp_path / "images/1.png")
    _png(tmp_path / "masks/1.png", 255)
    assert _pairs(build_manifest("polyp", tmp_path, class_name="colon")) == [("images/1.png", 1.0, "colon", "masks/1.png")]


def test_generic_folder(tmp_path):
    _png(tmp_path / "normal/a.png")
    _png(tmp_path / "abnormal/b.png")
    _png(tmp_path / "abnormal/c.png")
    _png(tmp_path / "masks/b.png", 255)
    records = build_manifest("folder", tmp_path, class_name="skin")
    assert _pairs(records) == [("normal/a.png", 0.0, "skin", ""), ("abnormal/b.png", 1.0, "skin", "masks/b.png"),
                               ("abnormal/c.png", 1.0, "skin", "")]
    assert records[0]["domain"] == "medical"
