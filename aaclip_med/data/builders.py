"""Manifest builders for the standard folder layouts of public anomaly-detection datasets.

Each builder is a pure function `root -> list of records` (paths relative to `root`); the CLI
`aaclip-med prepare DATASET ROOT --out MANIFEST` writes them with
:func:`aaclip_med.data.manifest.write_manifest`. Only test splits are built by default, as in the
paper's protocol; `split="train"` gives the normal training images where the layout has them.
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

from .cohort import build_cohort
from .errors import DataError

__all__ = ["build_manifest", "list_dataset_layouts", "IMAGE_SUFFIXES"]

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


def build_mvtec(root: Path, split: str = "test", good: str = "good", domain: str = Domain.INDUSTRIAL) -> list[dict]:
    """MVTec-AD / MPDD: CLASS/{train,test}/DEFECT/*.png, masks CLASS/ground_truth/DEFECT/NAME_mask.png."""
    records = []
    for class_dir in _class_dirs(root):
        for defect_dir in sorted(p for p in (class_dir / split).iterdir() if p.is_dir()):
            normal = defect_dir.name == good
            for image in _images(defect_dir):
                mask = None if normal else _find_mask(class_dir / "ground_truth" / defect_dir.name, image.stem, image, True)
                records.append(_record(root, image, 0.0 if normal else 1.0, class_dir.name, mask, domain))
    return records


def build_btad(root: Path, split: str = "test") -> list[dict]:
    """BTAD: CLASS/{train,test}/{ok,ko}/*, masks CLASS/ground_truth/ko/NAME.png."""
    return build_mvtec(root, split=split, good="ok")


def build_visa(root: Path, split: str = "test", csv_name: str = "split_csv/1cls.csv") -> list[dict]:
    """VisA: rows `object,split,label,image,mask` of its split csv (label normal | anomaly)."""
    table = root / csv_name
    if not table.is_file():
        raise DataError(table, "VisA split csv not found (expected ROOT/split_csv/1cls.csv)")
    records = []
    with table.open(newline="", encoding="utf-8") as handle:
        for n, row in enumerate(csv.DictReader(handle), 2):
            if row.get("split") != split:
                continue
            if row.get("label") not in ("normal", "anomaly"):
                raise DataError(f"{table}:{n}", f"label must be 'normal' or 'anomaly', got {row.get('label')!r}")
            records.append({
                Keys.IMAGE_PATH: row["image"], Keys.LABEL: float(row["label"] == "anomaly"),
                Keys.CLASS_NAME: row["object"], Keys.MASK_PATH: row.get("mask") or "", Keys.DOMAIN: str(Domain.INDUSTRIAL),
            })
    return records


def build_bmad(root: Path, class_name: str | None = None) -> list[dict]:
    """BMAD (Brain MRI, Liver CT, Retina OCT): test/good/img, test/Ungood/img, test/Ungood/label.

    `root` is one BMAD set (class = its folder name) or a folder holding several.
    """
    sets = [root] if (root / "test").is_dir() else _class_dirs(root)
    records = []
    for folder in sets:
        name, test = class_name or folder.name, folder / "test"
        for image in _images(test / "good" / "img"):
            records.append(_record(root, image, 0.0, name, None, Domain.MEDICAL))
        for image in _images(test / "Ungood" / "img"):
            mask = _find_mask(test / "Ungood" / "label", image.stem, image, True)
            records.append(_record(root, image, 1.0, name, mask, Domain.MEDICAL))
    return records


def build_polyp(root: Path, class_name: str | None = None) -> list[dict]:
    """Polyp sets (Kvasir, CVC-ClinicDB, CVC-ColonDB, CVC-300): images/ and masks/, all anomalous."""
    images = _images(root / "images")
    if not images:
        raise DataError(root, "no images/ folder with images (polyp layout: images/ and masks/)")
    name = class_name or root.name
    return [_record(root, p, 1.0, name, _find_mask(root / "masks", p.stem, p, True), Domain.MEDICAL) for p in images]


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
    logger.info("%s layout at %s: %d records", dataset_name, root, len(records))
    return records
