"""Fixtures of the bundle tests: a copy of the bundle to run in, and small generated data sets.

The bundle is copied to a temporary folder so its commands (which write to ``eval/`` and
``models/`` below the bundle) never touch the repository.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from aaclip_med.data.manifest import write_manifest
from tests._synthetic import oblique_affine, write_dicom_series, write_nifti

from ..conftest import make_tiny_model
from .commands import BUNDLE_DIR, TINY_TRAINING, run_command, tiny_model

# MONAI's bundle metadata schema, shipped in the bundle (verbatim copy) so verify_metadata runs offline
SCHEMA = BUNDLE_DIR / "docs" / "meta_schema_20240725.json"


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    """A fresh copy of bundles/aaclip_zero_shot (its docs/ holds the metadata schema)."""
    root = tmp_path_factory.mktemp("bundle") / "aaclip_zero_shot"
    shutil.copytree(BUNDLE_DIR, root, ignore=shutil.ignore_patterns("eval", "*.safetensors", "*.pt", "__pycache__"))
    return root


def _square_image(rng: np.random.Generator, size: int, anomalous: bool) -> tuple[np.ndarray, np.ndarray]:
    """A smooth grey texture; an anomalous one gets a bright disc, whose mask is returned."""
    yy, xx = np.mgrid[:size, :size]
    image = 90 + 40 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 4, (size, size))
    mask = np.zeros((size, size), np.uint8)
    if anomalous:
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 8) ** 2] = 255
        image[mask > 0] = 230
    return np.clip(image, 0, 255).astype(np.uint8), mask


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """2 normal + 2 anomalous 48 x 48 PNG images with masks; train.jsonl and test.jsonl list them all."""
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(0)
    records = []
    for index, anomalous in enumerate([False, True, False, True]):
        image, mask = _square_image(rng, 48, anomalous)
        name = f"{'abnormal' if anomalous else 'normal'}_{index}.png"
        (root / "images").mkdir(exist_ok=True)
        Image.fromarray(image).save(root / "images" / name)
        record = {"image_path": f"images/{name}", "label": float(anomalous), "class_name": "scan", "mask_path": ""}
        if anomalous:
            (root / "masks").mkdir(exist_ok=True)
            Image.fromarray(mask).save(root / "masks" / name)
            record["mask_path"] = f"masks/{name}"
        records.append(record)
    write_manifest(records, root / "train.jsonl")
    write_manifest(records, root / "test.jsonl")
    return root


@pytest.fixture(scope="session")
def cases(tmp_path_factory) -> Path:
    """What a hospital folder holds: a NIfTI volume (oblique affine), a DICOM series and a PNG."""
    root = tmp_path_factory.mktemp("cases")
    rng = np.random.default_rng(1)
    volume = rng.normal(100, 20, (40, 36, 3)).astype(np.float32)
    volume[10:16, 12:20, 1] += 200
    write_nifti(root / "brain.nii.gz", volume, oblique_affine())
    hu = rng.integers(-200, 200, (3, 32, 30)).astype(np.int32)
    write_dicom_series(root / "ct_series", hu)
    Image.fromarray(_square_image(rng, 40, True)[0]).save(root / "photo.png")
    (root / "notes.json").write_text(json.dumps({"ignored": True}))  # not an image: skipped
    return root


@pytest.fixture(scope="session")
def folders(dataset: Path, cases: Path) -> dict[str, Path]:
    """README placeholder key -> test folder."""
    return {"train_set": dataset, "test_set": dataset, "cases": cases}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> list[str]:
    """Tiny-model overrides with a seeded CLIP weights file, so every run builds the same network."""
    path = tmp_path_factory.mktemp("weights") / "tiny_clip.safetensors"
    state = make_tiny_model(seed=0).clip.state_dict()
    save_file({k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}, str(path))
    return tiny_model(path)


@pytest.fixture(scope="session")
def trained(bundle: Path, folders: dict[str, Path], tiny: list[str]) -> Path:
    """Stage 1, then Stage 2, with the README's commands; returns the bundle's models/ folder."""
    models = bundle / "models"
    run_command("train_stage1", bundle, folders, tiny + TINY_TRAINING)
    shutil.copytree(models / "stage1", bundle.parent / "after_stage1")  # Stage 2 must not change the text side
    run_command("train_stage2", bundle, folders, tiny + TINY_TRAINING)
    return models


@pytest.fixture(scope="session")
def inferred(bundle: Path, folders: dict[str, Path], trained: Path, tiny: list[str]) -> Path:
    """Single-process inference on the cases folder with the trained adapters; returns eval/."""
    run_command("inference", bundle, folders, tiny)
    return bundle / "eval"
