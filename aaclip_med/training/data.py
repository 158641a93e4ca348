"""The real-data hook: a manifest (optionally k-shot) -> training samples, transforms, validation set."""

from __future__ import annotations

import logging
from collections.abc import Callable
from os import PathLike

from aaclip_med.data.dispatch import ModalityDispatch
from aaclip_med.keys import Keys
from aaclip_med.training.config import SyntheticConfig

__all__ = ["manifest_training_data"]

logger = logging.getLogger(__name__)


def manifest_training_data(
    manifest: str | PathLike,
    dataset_root: str | PathLike,
    image_size: int,
    modality: str | dict = "auto",
    shot: int | None = None,
    seed: int = 0,
    val_manifest: str | PathLike | None = None,
    val_root: str | PathLike | None = None,
    synthetic: SyntheticConfig | None = None,
) -> tuple[object, Callable[[int], Callable], object | None]:
    """Datasets for :func:`aaclip_med.training.run_training` from manifest files.

    Args:
        manifest: training manifest (JSON lines, paths relative to ``dataset_root``).
        dataset_root: root of the training images and masks.
        image_size: S, the network's input side in pixels.
        modality: preprocessing preset (see ``aaclip_med.data.modality``) of records without a
            ``modality`` field; records with one use their own.
        shot: keep k samples per class (half normal, half anomalous), drawn with ``seed``.
        seed: seed of the k-shot draw (augmentation is seeded by the training run).
        val_manifest: optional validation manifest (never the test set).
        val_root: its root (default ``dataset_root``).
        synthetic: normal-only training: every normal sample becomes anomalous with probability
            ``synthetic.probability``; without ``val_manifest``, ``synthetic.holdout`` of the normal
            cases are held out and validated with anomalies of ``synthetic.validation_kind``.

    Returns:
        (loaded but unaugmented training samples, ``stage -> training transform``, validation samples
        preprocessed for inference or None).
    """
    from aaclip_med.data.dataset import ManifestDataset
    from aaclip_med.data.kshot import sample_k_shot
    from aaclip_med.data.manifest import read_manifest
    from aaclip_med.data.pipeline import inference_transforms, training_transforms
    from aaclip_med.training.synthetic import SyntheticValidation, split_holdout

    records = read_manifest(manifest)
    if shot is not None:
        records = sample_k_shot(records, shot, seed=seed)
    held_out: list[dict] = []
    if synthetic is not None:
        synthetic = synthetic.resolved(seed)
        if val_manifest is None:
            records, held_out = split_holdout(records, synthetic.holdout, synthetic.validation_seed)
        logger.info("Synthetic anomalies %s with probability %g%s", ",".join(synthetic.kinds), synthetic.probability,
                    f"; validation: {synthetic.validation_kind}" if held_out else "")
    logger.info("Training on %d samples of %s%s", len(records), manifest, f" ({shot}-shot)" if shot else "")
    train = ManifestDataset(records, dataset_root, transform=None, with_mask=True)
    kinds = synthetic.kinds if synthetic is not None else None
    probability = synthetic.probability if synthetic is not None else None

    def transform(stage: int) -> Callable:
        return ModalityDispatch(lambda name: training_transforms(
            name, image_size, stage=stage, seed=seed, synthetic_kinds=kinds, synthetic_probability=probability,
            textures=train), modality)

    val = None
    if held_out:
        val = SyntheticValidation(held_out, dataset_root, image_size, modality, synthetic)
    if val_manifest is not None:
        val = ManifestDataset(
            val_manifest,
            val_root or dataset_root,
            transform=ModalityDispatch(lambda name: inference_transforms(name, image_size, mask_key=Keys.MASK), modality),
            with_mask=True,
        )
    return train, transform, val
