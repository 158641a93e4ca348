"""The whole preprocessing of one loaded slice, for inference and for training.

Inference: modality preset -> 3 channels -> resize to S x S -> CLIP normalisation.
Training adds the augmentation where the published runs applied it: colour jitter (Stage 2) on
the source image before resizing, rotation / translation / flips after the normalisation.
Resizing (:mod:`aaclip_med.data.resize`): images from 8-bit files with PIL BICUBIC on uint8 (the
published pipeline), others with MONAI's bicubic; masks with PIL NEAREST. Input: a dict with a
(C, H, W) MetaTensor image (and a (1, H, W) binary mask), e.g. from
:class:`aaclip_med.data.slicing.SliceVolumed` or :class:`aaclip_med.data.dataset.ManifestDataset`.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.transforms import Compose

from aaclip_med.keys import Keys

from .augment import colour_transforms, geometric_transforms
from .channels import ClipNormalized, ToThreeChannelsd
from .modality import preset_transforms
from .resize import ResizeImaged, ResizeMaskd

__all__ = ["inference_transforms", "training_transforms"]


def _resize(image_size: int, image_key: str, mask_key: str | None) -> list:
    steps = [ResizeImaged(image_key, image_size)]
    return steps + ([ResizeMaskd(mask_key, image_size)] if mask_key else [])


def _synthetic(kinds, probability, modality, textures, image_key: str, mask_key: str) -> tuple[list, list]:
    """(the planting step, the labelling step after the last geometric one), or two empty lists."""
    if not kinds:
        return [], []
    from aaclip_med.anomalies import DEFAULT_PROBABILITY, RandSyntheticAnomalyd, SyntheticLabeld

    prob = DEFAULT_PROBABILITY if probability is None else probability
    return [RandSyntheticAnomalyd(image_key, kinds, prob, modality, textures, mask_key=mask_key)], [
        SyntheticLabeld(mask_key)]


def inference_transforms(
    modality: str | dict = "photo",
    image_size: int = 518,
    image_key: str = Keys.IMAGE,
    mask_key: str | None = None,
) -> Compose:
    """Preprocessing for inference: (C, H, W) slice -> (3, S, S) CLIP-normalised image.

    Args:
        modality: preset name (see :func:`aaclip_med.data.modality.list_modalities`) or dict.
        image_size: S, the model's input side in pixels (518 for AA-CLIP).
        image_key: key of the image.
        mask_key: key of a mask to resize alongside (for evaluation), or None.
    """
    steps = preset_transforms(modality, image_key, mask_key) + [ToThreeChannelsd(image_key)]
    return Compose([*steps, *_resize(image_size, image_key, mask_key), ClipNormalized(image_key)])


def training_transforms(
    modality: str | dict = "photo",
    image_size: int = 518,
    stage: int = 1,
    seed: int = 0,
    image_key: str = Keys.IMAGE,
    mask_key: str = Keys.MASK,
    synthetic_kinds: Sequence[str] | str | None = None,
    synthetic_probability: float | None = None,
    textures: Sequence | None = None,
) -> Compose:
    """Preprocessing plus the seeded augmentation of Stage 1 or 2 (spec sections 7, 8).

    With ``synthetic_kinds``, a normal sample first becomes anomalous with probability
    ``synthetic_probability`` (:class:`aaclip_med.anomalies.RandSyntheticAnomalyd`), on the slice
    as loaded (HU for CT), before the modality preset's window; its label is decided again at the
    end, from the mask as resized, rotated and shifted (:class:`aaclip_med.anomalies.SyntheticLabeld`):
    a region that no longer holds a pixel leaves a normal label.

    Args:
        modality: preset name or dict.
        image_size: S in pixels.
        stage: 1 or 2 (2 adds colour jitter on the image).
        seed: seed of every random transform, so a run can be repeated exactly.
        image_key: key of the image.
        mask_key: key of the (1, H, W) mask (all zeros for normal images).
        synthetic_kinds: synthetic anomaly kinds (``perlin``, ``cutpaste``, ``lesion``) or None.
        synthetic_probability: probability of a synthetic anomaly per normal sample (None: the
            documented default, :data:`aaclip_med.anomalies.DEFAULT_PROBABILITY`).
        textures: samples the ``perlin`` kind takes its textures from (e.g. the training set).
    """
    plant, relabel = _synthetic(synthetic_kinds, synthetic_probability, modality, textures, image_key, mask_key)
    steps = plant + preset_transforms(modality, image_key, mask_key) + [ToThreeChannelsd(image_key)]
    steps += colour_transforms(stage, image_key)
    steps += _resize(image_size, image_key, mask_key) + [ClipNormalized(image_key)]
    steps += geometric_transforms(image_size, image_key, mask_key) + relabel
    return Compose(steps).set_random_state(seed=seed)
