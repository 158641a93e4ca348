"""Manifest builder for DICOM/NIfTI cohorts: one line per slice of each case.

Layout: ROOT/images/CASE.nii[.gz] or ROOT/images/CASE/ (a DICOM series folder), and optional
lesion masks ROOT/masks/CASE.nii[.gz] on the same grid. A slice is anomalous when its mask
slice has a lesion voxel; a case without a mask is taken as normal.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aaclip_med.keys import Domain, Keys

from .errors import DataError
from .loading import load_image
from .slicing import case_id_from_path, resolve_axis

__all__ = ["build_cohort"]

logger = logging.getLogger(__name__)


def _cases(root: Path) -> list[Path]:
    folder = root / "images"
    if not folder.is_dir():
        raise DataError(root, "no images/ folder (cohort layout: images/CASE.nii.gz or images/CASE/ DICOM)")
    cases = sorted(p for p in folder.iterdir() if p.is_dir() or p.name.lower().endswith((".nii", ".nii.gz", ".dcm")))
    if not cases:
        raise DataError(folder, "holds no NIfTI file or DICOM series folder")
    return cases


def _mask_for(root: Path, case_id: str) -> Path | None:
    for suffix in (".nii.gz", ".nii"):
        if (root / "masks" / f"{case_id}{suffix}").is_file():
            return root / "masks" / f"{case_id}{suffix}"
    return None


def build_cohort(root: Path, class_name: str = "scan", modality: str | None = None) -> list[dict]:
    """One record per slice along the acquisition axis (the axis the manifest Dataset cuts along).

    Args:
        root: cohort root with images/ and optional masks/.
        class_name: class of every slice ("scan", as for the BMAD sets).
        modality: preset name recorded on every line (e.g. "ct", "mri").
    """
    records = []
    for case in _cases(root):
        image = load_image(case)
        case_id = case_id_from_path(case)
        mask_path = _mask_for(root, case_id)
        dim = resolve_axis("acquisition", image.affine)
        lesion = [False] * image.shape[dim + 1]
        if mask_path is not None:
            mask = load_image(mask_path)
            if tuple(mask.shape[1:]) != tuple(image.shape[1:]):
                msg = f"mask size {tuple(mask.shape[1:])} differs from image size {tuple(image.shape[1:])} of {case}"
                raise DataError(mask_path, msg)
            lesion = (mask != 0).any(0).sum(dim=[a for a in range(3) if a != dim]).gt(0).tolist()
        for index, positive in enumerate(lesion):
            record = {
                Keys.IMAGE_PATH: case.relative_to(root).as_posix(), Keys.LABEL: float(positive),
                Keys.CLASS_NAME: class_name, Keys.MASK_PATH: mask_path.relative_to(root).as_posix() if mask_path else "",
                Keys.SLICE_INDEX: index, Keys.CASE_ID: case_id, Keys.DOMAIN: str(Domain.MEDICAL),
            }
            records.append(record | ({Keys.MODALITY: modality} if modality else {}))
        logger.info("cohort case %s: %d slices, %d with lesion", case_id, len(lesion), sum(lesion))
    return records
