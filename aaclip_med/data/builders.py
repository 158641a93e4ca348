"""Manifest builders for the folder layouts of the public releases of anomaly-detection datasets.

Each builder is a pure function `root -> list of records` (paths relative to `root`); the CLI
`aaclip-med prepare DATASET ROOT --out MANIFEST` writes them with
:func:`aaclip_med.data.manifest.write_manifest`. The default split is `test` everywhere: it is
what the paper tests on, and for VisA it is also what AA-CLIP trains on (the `split_csv/1cls.csv`
test split, 2162 images of which 1200 anomalous, with masks; VisA's own `train` split holds normal
images only and cannot train AA-CLIP). `split="train"` (and `"valid"` for BMAD) gives the other
splits where the release has them. A layout that yields no record is an error naming the folder.
"""

from __future__ import annotations

import csv
import inspect
import logging
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from types import MappingProxyType

from aaclip_med.keys import Domain, Keys

from .cohort_manifest import build_cohort
from .errors import DataError

__all__ = ["build_manifest", "list_dataset_layouts", "IMAGE_SUFFIXES", "VISA_1CLS_TEST", "BMAD_SPLITS"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _record(root: Path, image: Path, label: float, class_name: str, mask: Path | None, domain: str) -> dict:
    return {
        Keys.IMAGE_PATH: image.relative_to(root).as_posix(),
        Keys.LABEL: label,
        Keys.CLASS_NAME: class_name,
        Keys.MASK_PATH: mask.relative_to(root).as_posix() if mask else "",
        Keys.DOMAIN: str(domain),
    }


def _find_mask(folder: Path, stem: str, image: Path, required: bool) -> Path | None:
    for candidate in (stem, f"{stem}_mask"):
        for suffix in IMAGE_SUFFIXES:
            if (folder / f"{candidate}{suffix}").is_file():
                return folder / f"{candidate}{suffix}"
    if required:
        raise DataError(image, f"mask path missing: no mask named {stem}[_mask].png in {folder}")
    return None


def _class_dirs(root: Path) -> list[Path]:
    classes = sorted(p for p in root.iterdir() if (p / "test").is_dir()) if root.is_dir() else []
    if not classes:
        raise DataError(root, "no class folder with a test/ sub-folder; is this the dataset root?")
    return classes


def _split_dir(class_dir: Path, split: str) -> Path:
    folder = class_dir / split
    if not folder.is_dir():
        found = sorted(p.name for p in class_dir.iterdir() if p.is_dir())
        raise DataError(folder, f"split folder not found; {class_dir.name} has {found} (choose --split among them)")
    return folder


def build_mvtec(root: Path, split: str = "test", good: str = "good", domain: str = Domain.INDUSTRIAL) -> list[dict]:
    """MVTec-AD / MPDD: CLASS/{train,test}/DEFECT/*.png, masks CLASS/ground_truth/DEFECT/NAME_mask.png."""
    records = []
    for class_dir in _class_dirs(root):
        for defect_dir in sorted(p for p in _split_dir(class_dir, split).iterdir() if p.is_dir()):
            normal = defect_dir.name == good
            for image in _images(defect_dir):
                mask = None if normal else _find_mask(class_dir / "ground_truth" / defect_dir.name, image.stem, image, True)
                records.append(_record(root, image, 0.0 if normal else 1.0, class_dir.name, mask, domain))
    return records


def build_btad(root: Path, split: str = "test") -> list[dict]:
    """BTAD: CLASS/{train,test}/{ok,ko}/*, masks CLASS/ground_truth/ko/NAME.png."""
    return build_mvtec(root, split=split, good="ok")


# VisA's split_csv/1cls.csv "test" split: AA-CLIP's training set (spec section 9)
VISA_1CLS_TEST = {"images": 2162, "anomalous": 1200}


def build_visa(root: Path, split: str = "test", csv_name: str = "split_csv/1cls.csv") -> list[dict]:
    """VisA: rows `object,split,label,image,mask` of its split csv (label normal | anomaly).

    `split="test"` (default) is the published training set of AA-CLIP as well as VisA's test set:
    2162 images, 1200 anomalous, with masks. `split="train"` is VisA's normal-only training split.
    """
    table = root / csv_name
    if not table.is_file():
        raise DataError(table, "VisA split csv not found (expected ROOT/split_csv/1cls.csv)")
    records, splits = [], set()
    with table.open(newline="", encoding="utf-8") as handle:
        for n, row in enumerate(csv.DictReader(handle), 2):
            splits.add(row.get("split"))
            if row.get("split") != split:
                continue
            if row.get("label") not in ("normal", "anomaly"):
                raise DataError(f"{table}:{n}", f"label must be 'normal' or 'anomaly', got {row.get('label')!r}")
            records.append({
                Keys.IMAGE_PATH: row["image"], Keys.LABEL: float(row["label"] == "anomaly"),
                Keys.CLASS_NAME: row["object"], Keys.MASK_PATH: row.get("mask") or "", Keys.DOMAIN: str(Domain.INDUSTRIAL),
            })
    if not records:
        raise DataError(table, f"has no row of split {split!r}; its splits are {sorted(str(x) for x in splits)}")
    anomalous = sum(int(r[Keys.LABEL]) for r in records)
    logger.info("VisA %s split: %d images, %d anomalous", split, len(records), anomalous)
    if split == "train" and not anomalous:
        logger.warning("VisA's train split holds normal images only: AA-CLIP trains on the 1cls test split "
                       "(--split test: %d images, %d anomalous)", VISA_1CLS_TEST["images"], VISA_1CLS_TEST["anomalous"])
    return records


BMAD_SPLITS = ("train", "valid", "test")


def _bmad_set(folder: Path, split: str, name: str, root: Path) -> list[dict]:
    """Records of one BMAD set: SPLIT/good/img (normal), SPLIT/Ungood/img + SPLIT/Ungood/label."""
    base = folder / split
    if not base.is_dir():
        raise DataError(base, f"split folder not found; BMAD sets hold {list(BMAD_SPLITS)}")
    if not (base / "good" / "img").is_dir() and (_images(base / "good") or _images(base / "Ungood")):
        msg = ("is an image-level BMAD set (images directly in good/ and Ungood/, no img/ and label/ folders, "
               "no pixel masks), which the bmad layout does not build; AA-CLIP's BMAD benchmarks are the "
               "pixel-level sets Brain_AD, Liver_AD and Retina_RESC_AD")
        raise DataError(folder, msg)
    records = [_record(root, image, 0.0, name, None, Domain.MEDICAL) for image in _images(base / "good" / "img")]
    for image in _images(base / "Ungood" / "img"):
        mask = _find_mask(base / "Ungood" / "label", image.stem, image, True)
        records.append(_record(root, image, 1.0, name, mask, Domain.MEDICAL))
    if not records:
        raise DataError(base, "no images in good/img or Ungood/img")
    return records


def build_bmad(root: Path, class_name: str | None = None, split: str = "test") -> list[dict]:
    """BMAD (Brain_AD, Liver_AD, Retina_RESC_AD): SPLIT/good/img, SPLIT/Ungood/img, SPLIT/Ungood/label.

    `root` is one set (class = its folder name, or `class_name`) or the folder holding several;
    there, image-level sets without masks (Retina_OCT2017_AD, Chest_RSNA_AD, ...) are skipped with
    a warning. Splits: `test` (default), `valid` (normal and anomalous, with masks), `train`
    (normal only).
    """
    if split not in BMAD_SPLITS:
        raise DataError(root, f"unknown BMAD split {split!r}; choose one of {list(BMAD_SPLITS)}")
    if (root / split).is_dir() or (root / "test").is_dir():
        return _bmad_set(root, split, class_name or root.name, root)
    sets = sorted(p for p in root.iterdir() if (p / "test").is_dir()) if root.is_dir() else []
    if not sets:
        raise DataError(root, "no BMAD set here: expected test/ (one set) or folders holding test/ (e.g. Brain_AD)")
    records = []
    for folder in sets:
        try:
            records += _bmad_set(folder, split, class_name or folder.name, root)
        except DataError as err:
            logger.warning("skipping %s", err)
    if not records:
        raise DataError(root, f"none of the BMAD sets {[p.name for p in sets]} has pixel-level {split} data")
    return records


def _polyp_set(folder: Path, name: str, root: Path) -> list[dict]:
    images = _images(folder / "images")
    return [_record(root, p, 1.0, name, _find_mask(folder / "masks", p.stem, p, True), Domain.MEDICAL) for p in images]


def build_polyp(root: Path, class_name: str | None = None) -> list[dict]:
    """Polyp sets (Kvasir, CVC-ClinicDB, CVC-ColonDB, CVC-300): images/ and masks/, all anomalous.

    `root` is one set (class = its folder name, or `class_name`) or the folder holding several,
    such as the benchmark's `TestDataset/` (one class per set).
    """
    if _images(root / "images"):
        return _polyp_set(root, class_name or root.name, root)
    sets = sorted(p for p in root.iterdir() if p.is_dir() and _images(p / "images"))
    if not sets:
        raise DataError(root, "no images/ folder with images here or in its sub-folders (polyp layout: images/ and masks/)")
    return [r for folder in sets for r in _polyp_set(folder, class_name or folder.name, root)]


def build_folder(root: Path, class_name: str | None = None, domain: str = Domain.MEDICAL) -> list[dict]:
    """Generic layout: normal/, abnormal/ and optional masks/ (same file stem as the image)."""
    normal, abnormal = _images(root / "normal"), _images(root / "abnormal")
    if not normal and not abnormal:
        raise DataError(root, "no images in normal/ or abnormal/")
    name = class_name or root.name
    records = [_record(root, p, 0.0, name, None, domain) for p in normal]
    records += [_record(root, p, 1.0, name, _find_mask(root / "masks", p.stem, p, False), domain) for p in abnormal]
    return records


_LAYOUTS: MappingProxyType[str, Callable[..., list[dict]]] = MappingProxyType(
    {
        "mvtec": build_mvtec,
        "mpdd": build_mvtec,
        "btad": build_btad,
        "visa": build_visa,
        "bmad": build_bmad,
        "polyp": build_polyp,
        "folder": build_folder,
        "cohort": build_cohort,
    }
)


def list_dataset_layouts() -> list[str]:
    """Names accepted by :func:`build_manifest`."""
    return sorted(_LAYOUTS)


def build_manifest(dataset_name: str, root: str | PathLike, **options) -> list[dict]:
    """Records of a dataset in one of the known layouts.

    Args:
        dataset_name: one of :func:`list_dataset_layouts`.
        root: the dataset root; paths in the records are relative to it.
        options: layout options (`split`, `class_name`, ...).

    Raises:
        ValueError: unknown layout (the message lists them).
        DataError: the folder does not match the layout.
    """
    if dataset_name not in _LAYOUTS:
        msg = f"unknown dataset layout {dataset_name!r}; choose one of {list_dataset_layouts()}"
        raise ValueError(msg)
    builder = _LAYOUTS[dataset_name]
    accepted = [p for p in inspect.signature(builder).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        msg = f"layout {dataset_name!r} takes no option(s) {unknown}; it accepts {accepted}"
        raise ValueError(msg)
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset root is not a folder")
    records = builder(root, **options)
    if not records:
        raise DataError(root, f"the {dataset_name} layout found no image here (options {options}); is this the dataset root?")
    logger.info("%s layout at %s: %d records", dataset_name, root, len(records))
    return records
