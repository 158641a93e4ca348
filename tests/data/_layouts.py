"""Tiny fake copies of the public releases, with their real folder and file naming.

Each ``make_*`` writes a few images per class where the release has thousands and returns the
records the published AA-CLIP runs list for that tree (``image_path``, ``label``, ``mask_path``
relative to the root the paper's commands use; the class name is ours: the folder name).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (12, 16)


def image(path: Path, seed: int = 0, gray: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, SIZE if gray else (*SIZE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def mask(path: Path, values=(255,), jpeg: bool = False) -> None:
    """A mask with one blob per value (VisA: defect ids 1, 3; MVTec: 255)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros(SIZE, np.uint8)
    for n, value in enumerate(values):
        pixels[2 + 4 * n : 5 + 4 * n, 3:9] = value
    if jpeg:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=75)
        path.write_bytes(buffer.getvalue())
    else:
        Image.fromarray(pixels).save(path)


def _row(image_path, label, mask_path, class_name):
    return (image_path, float(label), mask_path, class_name)


def make_mvtec(root: Path) -> list[tuple]:
    """mvtec_anomaly_detection/CLASS/{train/good, test/good, test/DEFECT, ground_truth/DEFECT/NNN_mask.png}."""
    (root / "license.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "license.txt").write_text("CC BY-NC-SA 4.0")
    expected = []
    for class_name, defects in (("bottle", ("broken_large", "contamination")), ("metal_nut", ("scratch",))):
        image(root / class_name / "train" / "good" / "000.png")
        image(root / class_name / "test" / "good" / "000.png")
        expected.append(_row(f"{class_name}/test/good/000.png", 0, "", class_name))
        for defect in defects:
            image(root / class_name / "test" / defect / "000.png")
            mask(root / class_name / "ground_truth" / defect / "000_mask.png")
            expected.append(_row(f"{class_name}/test/{defect}/000.png", 1,
                                 f"{class_name}/ground_truth/{defect}/000_mask.png", class_name))
    return expected


def make_mpdd(root: Path) -> list[tuple]:
    """MPDD: as MVTec (CLASS/test/DEFECT, CLASS/ground_truth/DEFECT/NNN_mask.png)."""
    expected = []
    for class_name, defect in (("bracket_black", "hole"), ("tubes", "anomalous")):
        image(root / class_name / "train" / "good" / "000.png")
        image(root / class_name / "test" / "good" / "001.png")
        image(root / class_name / "test" / defect / "000.png")
        mask(root / class_name / "ground_truth" / defect / "000_mask.png")
        expected += [_row(f"{class_name}/test/{defect}/000.png", 1, f"{class_name}/ground_truth/{defect}/000_mask.png",
                          class_name),
                     _row(f"{class_name}/test/good/001.png", 0, "", class_name)]
    return expected


def make_btad(root: Path) -> list[tuple]:
    """BTech_Dataset_transformed/NN/{train/ok, test/ok, test/ko, ground_truth/ko}: 01 bmp + png masks,
    02 png, 03 bmp + bmp masks."""
    expected = []
    for class_name, suffix, mask_suffix in (("01", "bmp", "png"), ("02", "png", "png"), ("03", "bmp", "bmp")):
        image(root / class_name / "train" / "ok" / f"0000.{suffix}")
        image(root / class_name / "test" / "ok" / f"0000.{suffix}")
        image(root / class_name / "test" / "ko" / f"0000.{suffix}")
        mask(root / class_name / "ground_truth" / "ko" / f"0000.{mask_suffix}")
        expected += [_row(f"{class_name}/test/ko/0000.{suffix}", 1, f"{class_name}/ground_truth/ko/0000.{mask_suffix}",
                          class_name),
                     _row(f"{class_name}/test/ok/0000.{suffix}", 0, "", class_name)]
    return expected


VISA_NORMALS, VISA_ANOMALIES = {"train": 8, "test": 4}, 5  # per class


def make_visa(root: Path) -> dict[str, list[tuple]]:
    """VisA_20220922: split_csv/1cls.csv (CRLF), CLASS/Data/Images/{Normal,Anomaly}/*.JPG,
    CLASS/Data/Masks/Anomaly/NNN.png holding defect ids. Returns the expected records per split."""
    rows, expected = ["object,split,label,image,mask"], {"train": [], "test": []}
    for class_name in ("candle", "pcb1"):
        for n in range(VISA_NORMALS["train"] + VISA_NORMALS["test"]):
            path = f"{class_name}/Data/Images/Normal/{n:04d}.JPG"
            image(root / path, seed=n)
            split = "train" if n < VISA_NORMALS["train"] else "test"
            rows.append(f"{class_name},{split},normal,{path},")
            expected[split].append(_row(path, 0, "", class_name))
        for n in range(VISA_ANOMALIES):
            path, mask_path = f"{class_name}/Data/Images/Anomaly/{n:03d}.JPG", f"{class_name}/Data/Masks/Anomaly/{n:03d}.png"
            image(root / path, seed=10 + n)
            mask(root / mask_path, values=(1, 3))
            rows.append(f"{class_name},test,anomaly,{path},{mask_path}")
            expected["test"].append(_row(path, 1, mask_path, class_name))
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    (root / "split_csv" / "1cls.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    return expected


BMAD_PIXEL_SETS = ("Brain_AD", "Liver_AD", "Retina_RESC_AD")


def make_bmad(root: Path) -> dict[str, dict[str, list[tuple]]]:
    """BMAD: SET/{train/good/img, valid/{good/img, Ungood/img, Ungood/label}, test/...} for the three
    pixel-level sets, and the flat image-level Retina_OCT2017_AD/{train/good, val?, test/good,
    test/Ungood}/*.jpeg. Returns {set: {split: records relative to the set folder}}."""
    expected: dict[str, dict[str, list[tuple]]] = {}
    for set_name in BMAD_PIXEL_SETS:
        folder, rows = root / set_name, {"train": [], "valid": [], "test": []}
        image(folder / "train" / "good" / "img" / "00003_60.png", gray=True)
        rows["train"].append(_row("train/good/img/00003_60.png", 0, "", set_name))
        for split in ("valid", "test"):
            image(folder / split / "good" / "img" / "00000_96.png", gray=True)
            image(folder / split / "Ungood" / "img" / "00002_68.png", gray=True)
            mask(folder / split / "Ungood" / "label" / "00002_68.png")
            rows[split] += [_row(f"{split}/good/img/00000_96.png", 0, "", set_name),
                            _row(f"{split}/Ungood/img/00002_68.png", 1, f"{split}/Ungood/label/00002_68.png", set_name)]
        expected[set_name] = rows
    flat = root / "Retina_OCT2017_AD"
    image(flat / "train" / "good" / "NORMAL-1.jpeg", gray=True)
    image(flat / "test" / "good" / "NORMAL-2.jpeg", gray=True)
    image(flat / "test" / "Ungood" / "CNV-3.jpeg", gray=True)
    return expected


POLYP_SETS = {"Kvasir": 5, "CVC-ClinicDB": 4, "CVC-ColonDB": 4, "CVC-300": 4}


def make_polyp(root: Path) -> dict[str, list[tuple]]:
    """PraNet's TestDataset/{Kvasir, CVC-ClinicDB, CVC-ColonDB, CVC-300}/{images, masks}/*.png."""
    expected = {}
    for set_name, count in POLYP_SETS.items():
        rows = []
        for n in range(count):
            image(root / set_name / "images" / f"{n + 1}.png", seed=n)
            mask(root / set_name / "masks" / f"{n + 1}.png")
            rows.append(_row(f"images/{n + 1}.png", 1, f"masks/{n + 1}.png", set_name))
        expected[set_name] = rows
    return expected


def make_kvasir_seg(root: Path) -> list[tuple]:
    """Kvasir-SEG's original release: images/*.jpg and JPEG masks/*.jpg."""
    rows = []
    for n, name in enumerate(("cju0qkwl35piu0993l0dewei2", "cju0qoxqj9q6s0835b43399p4")):
        image(root / "images" / f"{name}.jpg", seed=n)
        mask(root / "masks" / f"{name}.jpg", jpeg=True)
        rows.append(_row(f"images/{name}.jpg", 1, f"masks/{name}.jpg", root.name))
    return rows


def as_rows(records: list[dict]) -> list[tuple]:
    return [_row(r["image_path"], r["label"], r.get("mask_path") or "", r["class_name"]) for r in records]
