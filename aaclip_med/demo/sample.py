"""The bundled sample: a small multi-modality data set with synthetic anomalies and exact masks.

Layout written by :func:`generate_sample` (paths in the manifest are relative to ``out_dir``)::

    manifest.jsonl        one line per image or per slice (interfaces.md), ground truth
    descriptions.json     class name -> text description used for the prompts
    README.txt            provenance of every file
    ct/ct_study/IM*.dcm   CT study as a DICOM series (pixels of pydicom's CT_small.dcm)
    ct/mask.nii.gz        lesion mask on the series grid, array (row, column, slice)
    mri/mri_t1.nii.gz     MR volume (nibabel's anatomical.nii), mri/mask.nii.gz its lesion mask
    retina/images/*.png   fundus photos; retina/masks/*.png masks of the anomalous ones
    <texture>/images/*.png, <texture>/masks/*.png   brick, grass, gravel tiles with defects

Volumes are listed slice by slice, so each class has normal and anomalous samples and
image-level AUROC is defined for every class.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from aaclip_med.anomalies import RandAnomaly, RandCutPaste, SyntheticAnomaly, generator_class, plant_lesion
from aaclip_med.data.manifest import write_manifest
from aaclip_med.demo.settings import SIZES, SampleSize
from aaclip_med.files import write_bytes_atomic, write_json_atomic
from aaclip_med.keys import Domain, Keys

from . import sources
from .writers import (
    series_affine_ras,
    write_ct_series,
    write_nifti_gz,
    write_png,
)

__all__ = ["SampleCase", "SampleSize", "SIZES", "DESCRIPTIONS", "build_sample_items", "write_sample", "generate_sample"]

logger = logging.getLogger(__name__)

# defect families of the texture classes (registered synthetic kinds), cycled in this order
TEXTURE_DEFECTS = ("scratch", "hole", "color_spot", "cutpaste")


def _texture_defect(kind: str) -> RandAnomaly:
    """The generator of a texture defect; cut-paste as whole patches (a scar is hard to see in a tile)."""
    return RandCutPaste(("patch",)) if kind == "cutpaste" else generator_class(kind)()


# class name -> description for the prompts (spec section 4: medical scans are "scan")
DESCRIPTIONS = {
    "ct": "scan",
    "mri": "scan",
    "retina": "retinal fundus photograph",
    "brick": "brick wall surface",
    "grass": "grass texture",
    "gravel": "gravel surface",
}


@dataclass
class SampleCase:
    """One case of the sample, held in memory before it is written.

    ``image`` and ``clean`` have the same shape; ``mask`` is True exactly where they differ.
    Volumes are (X, Y, Z) with slices along the last axis (for the CT: row, column, slice).
    """

    case_id: str
    class_name: str
    kind: str  # "dicom_series" | "nifti" | "image"
    modality: str
    domain: str
    clean: np.ndarray
    image: np.ndarray
    mask: np.ndarray
    image_path: str  # relative to the sample root
    mask_path: str  # "" for a 2D normal image
    affine: np.ndarray | None = None  # RAS affine of volumes
    geometry: dict = field(default_factory=dict)  # DICOM geometry of the CT series
    defect: str = ""  # defect family (a synthetic kind), "" when normal

    def records(self) -> list[dict]:
        """Manifest lines of this case: one per slice for volumes, one for an image."""
        base = {Keys.CLASS_NAME: self.class_name, Keys.CASE_ID: self.case_id, Keys.MODALITY: self.modality,
                Keys.DOMAIN: self.domain, Keys.IMAGE_PATH: self.image_path}
        if self.kind == "image":
            return [{**base, Keys.LABEL: float(self.mask.any()), Keys.MASK_PATH: self.mask_path}]
        return [
            {**base, Keys.SLICE_INDEX: k, Keys.LABEL: float(self.mask[..., k].any()), Keys.MASK_PATH: self.mask_path}
            for k in range(self.image.shape[-1])
        ]


def _volume_lesion(volume: np.ndarray, rng: np.random.Generator, delta: float, radius_frac: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Plant one 3D lesion in the later part of the slice axis, so the first slices stay normal.

    Returns:
        (volume with the lesion, (X, Y, Z) bool mask), the volume in the input's dtype.
    """
    x, y, z = volume.shape
    centre = (x * rng.uniform(0.42, 0.58), y * rng.uniform(0.42, 0.58), z * 0.6)
    radii = (x * radius_frac, y * radius_frac, max(z * 0.2, 0.9))
    planted = plant_lesion(volume[None], rng, centre, radii, delta)
    return planted.image[0], planted.mask[0]


def _channels_last(planted: SyntheticAnomaly) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) image and (H, W) mask of a photo planted channel first."""
    return np.moveaxis(planted.image, 0, -1), planted.mask[0]


def _ct_case(size: SampleSize, rng: np.random.Generator) -> SampleCase:
    ct = sources.ct_slices(size.ct_slices)
    clean = np.ascontiguousarray(ct.hu.transpose(1, 2, 0))  # (row, column, slice)
    image, mask = _volume_lesion(clean, rng, delta=90.0, radius_frac=0.09)  # hyperdense, like an enhancing lesion
    geometry = {"origin": np.array([-158.1358, -179.0358, -75.7]), "row_dir": np.array([1.0, 0.0, 0.0]),
                "col_dir": np.array([0.0, 1.0, 0.0]), "spacing": ct.pixel_spacing, "step": ct.slice_step}
    affine = series_affine_ras(geometry["origin"], geometry["row_dir"], geometry["col_dir"], ct.pixel_spacing, ct.slice_step)
    return SampleCase("ct_study", "ct", "dicom_series", "ct", Domain.MEDICAL, clean, image, mask,
                      "ct/ct_study", "ct/mask.nii.gz", affine, geometry, "lesion")


def _mr_case(size: SampleSize, rng: np.random.Generator) -> SampleCase:
    mr = sources.mr_volume(size.mr_slices)
    delta = 0.6 * float(np.percentile(mr.data, 99))  # bright, like a T2/FLAIR hyperintensity
    image, mask = _volume_lesion(mr.data, rng, delta=delta, radius_frac=0.1)
    return SampleCase("mri_t1", "mri", "nifti", "mri", Domain.MEDICAL, mr.data, image, mask,
                      "mri/mri_t1.nii.gz", "mri/mask.nii.gz", mr.affine, {}, "lesion")


def _retina_cases(size: SampleSize, rng: np.random.Generator) -> list[SampleCase]:
    cases = []
    for i, photo in enumerate(sources.retina_images(size.retina_count, size.retina_size)):
        name = f"retina_{i:03d}"
        mask, image, defect = np.zeros(photo.shape[:2], bool), photo, ""
        if i % 2:  # every second view gets a lesion: bright exudate or dark haemorrhage
            delta = np.array([70.0, 55.0, -10.0]) if rng.random() < 0.5 else np.array([-60.0, -70.0, -50.0])
            s = size.retina_size
            centre = (s * rng.uniform(0.35, 0.65), s * rng.uniform(0.35, 0.65))
            planted = plant_lesion(np.moveaxis(photo, -1, 0), rng, centre, (s * 0.06, s * rng.uniform(0.04, 0.08)), delta)
            (image, mask), defect = _channels_last(planted), "lesion"
        cases.append(SampleCase(name, "retina", "image", "endoscopy", Domain.MEDICAL, photo, image, mask,
                                f"retina/images/{name}.png", f"retina/masks/{name}.png" if defect else "", defect=defect))
    return cases


def _texture_cases(name: str, size: SampleSize, rng: np.random.Generator) -> list[SampleCase]:
    cases = []
    for i, tile in enumerate(sources.texture_tiles(name, size.texture_count, size.texture_size)):
        case = f"{name}_{i:03d}"
        mask, image, defect = np.zeros(tile.shape[:2], bool), tile, ""
        if i % 2:
            defect = TEXTURE_DEFECTS[(i // 2 + sources.TEXTURES.index(name)) % len(TEXTURE_DEFECTS)]
            image, mask = _channels_last(_texture_defect(defect).plant_array(np.moveaxis(tile, -1, 0), rng))
        cases.append(SampleCase(case, name, "image", "photo", Domain.INDUSTRIAL, tile, image, mask,
                                f"{name}/images/{case}.png", f"{name}/masks/{case}.png" if defect else "", defect=defect))
    return cases


def build_sample_items(size: str = "full", seed: int = 0) -> list[SampleCase]:
    """Build every case of the sample in memory (nothing is written).

    Args:
        size: ``"full"`` (the demo) or ``"small"`` (tests).
        seed: seed of all random choices; the same seed gives the same arrays.

    Raises:
        ValueError: unknown size.
    """
    if size not in SIZES:
        msg = f"unknown sample size {size!r}; choose one of {sorted(SIZES)}"
        raise ValueError(msg)
    spec = SIZES[size]
    # one child generator per class, so adding a class never changes the others
    rngs = [np.random.default_rng([seed, k]) for k in range(3 + len(sources.TEXTURES))]
    cases = [_ct_case(spec, rngs[0]), _mr_case(spec, rngs[1]), *_retina_cases(spec, rngs[2])]
    for k, name in enumerate(sources.TEXTURES):
        cases += _texture_cases(name, spec, rngs[3 + k])
    return cases


def _write_case(case: SampleCase, root: Path, seed: int) -> None:
    if case.kind == "dicom_series":
        write_ct_series(root / case.image_path, case.image.transpose(2, 0, 1), case.geometry, seed)
        write_nifti_gz(root / case.mask_path, case.mask.astype(np.uint8), case.affine)
    elif case.kind == "nifti":
        write_nifti_gz(root / case.image_path, case.image.astype(np.float32), case.affine)
        write_nifti_gz(root / case.mask_path, case.mask.astype(np.uint8), case.affine)
    else:
        write_png(root / case.image_path, case.image)
        if case.mask_path:
            write_png(root / case.mask_path, case.mask.astype(np.uint8) * 255)


_README = """aaclip-med sample data (generated by `aaclip-med sample`, size {size}, seed {seed})

Every anomaly here is SYNTHETIC, planted by the generators of aaclip_med/anomalies; the masks are exact
(a mask pixel is set exactly where the image was changed). Not for clinical use.

Sources (real images shipped inside installed packages; see each package's licence):
- ct/      pixel data of pydicom's test file CT_small.dcm, re-written as an axial series with
           fresh UIDs; PatientName/PatientID are 'ANON'; no other attribute of the file is copied.
- mri/     nibabel's test volume anatomical.nii (central slices, upsampled 4x in-plane).
- retina/  scikit-image data.retina() (fundus photograph), rotated and flipped views.
- brick/, grass/, gravel/  scikit-image textures data.brick(), data.grass(), data.gravel().

manifest.jsonl lists one line per image or per slice (JSON lines, paths relative to this folder);
descriptions.json maps each class to the text description used for the prompts.
"""


def write_sample(cases: list[SampleCase], out_dir: str | PathLike, size: str = "full", seed: int = 0) -> Path:
    """Write ``cases`` under ``out_dir``; the manifest is written last, so it marks a complete sample.

    Returns:
        Path of ``manifest.jsonl``.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    for case in cases:
        _write_case(case, root, seed)
    write_json_atomic(root / "descriptions.json", {c.class_name: DESCRIPTIONS[c.class_name] for c in cases}, sort_keys=True)
    write_bytes_atomic(root / "README.txt", _README.format(size=size, seed=seed).encode())
    manifest = write_manifest([r for c in cases for r in c.records()], root / "manifest.jsonl")
    logger.info("wrote the %s sample (%d cases) to %s", size, len(cases), root)
    return manifest


def generate_sample(out_dir: str | PathLike, size: str = "full", seed: int = 0, force: bool = False) -> Path:
    """Generate the sample data set under ``out_dir`` and return the path of its manifest.

    Args:
        out_dir: output folder (created, or existing and empty; only files of the sample are written in it).
        size: ``"full"`` (about 45 slices/images, the demo) or ``"small"`` (16, for tests).
        seed: seed of the synthetic anomalies; the same seed writes byte-identical files.
        force: replace a non-empty ``out_dir`` whole (everything in it is deleted first).

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``force`` is False. Writing over an earlier
            sample would leave its files beside the new ones (old slices in the new CT series,
            images the manifest does not list).
    """
    root = Path(out_dir)
    if root.is_dir() and any(root.iterdir()):
        if not force:
            msg = f"{root} is not empty; choose a new folder, or pass --force to replace it whole"
            raise FileExistsError(msg)
        logger.warning("replacing %s whole (--force)", root)
        shutil.rmtree(root)
    return write_sample(build_sample_items(size, seed), root, size, seed)
