"""Normal-only training data: the held-out normal cases and their synthetic validation set.

Selection must not reward the generator alone: the validation set holds normal cases training
never sees, and half of its anomalies come from a generator kind training does not use. The other
half come from the training kinds (other seeds, unseen cases): with a foreign kind alone, an
epoch's score measures nothing the training moves, and the first epoch tends to be kept while
the loss still falls. The best epoch detects both what it was trained on and what it was not.
Every held-out image is scored clean and planted, so the image-level score compares an image with
itself and not one group of images with another.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from os import PathLike

import numpy as np
from torch.utils.data import Dataset

from aaclip_med.data.manifest import record_case
from aaclip_med.keys import Keys
from aaclip_med.training.batches import sample_seed
from aaclip_med.training.config import SyntheticConfig

__all__ = ["split_holdout", "SyntheticValidation"]

logger = logging.getLogger(__name__)


def split_holdout(records: Sequence[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training records, held-out normal records): ``fraction`` of the normal cases, drawn with ``seed``.

    At least one case is held out when ``fraction`` > 0 and there are two or more normal cases;
    with fewer, nothing is held out (a warning says so) and the last epoch is kept.
    """
    normal_cases = sorted({record_case(r) for r in records if float(r.get(Keys.LABEL, 0.0)) <= 0.5})
    if fraction <= 0:
        return list(records), []
    if len(normal_cases) < 2:
        logger.warning("Synthetic validation needs 2 or more normal cases, found %d: no validation, the last "
                       "epoch of each stage is kept", len(normal_cases))
        return list(records), []
    count = min(max(1, round(fraction * len(normal_cases))), len(normal_cases) - 1)
    order = np.random.default_rng(seed).permutation(len(normal_cases))
    held = {normal_cases[i] for i in order[:count]}
    train = [r for r in records if record_case(r) not in held or float(r.get(Keys.LABEL, 0.0)) > 0.5]
    val = [r for r in records if record_case(r) in held and float(r.get(Keys.LABEL, 0.0)) <= 0.5]
    logger.info("Synthetic validation: %d of %d normal cases held out (%d samples)", count, len(normal_cases), len(val))
    return train, val


class SyntheticValidation(Dataset):
    """Every held-out normal sample twice, clean and with a synthetic anomaly, preprocessed for inference.

    Sample ``2 i`` is record ``i`` as it is (normal), sample ``2 i + 1`` the same record with an
    anomaly seeded from (``validation_seed``, 0, i): the same in every epoch and every run. The
    anomalous and the normal samples are the same images, so an image score that follows the
    image's content (its brightness, its texture) and not the anomaly gives an image AUROC of
    0.5; with every second record planted instead, a handful of held-out images put a content
    difference between the two groups that scored far from 0.5 on a network that had learned
    nothing (issue 34). Records 0, 2, 4, ... get the validation kind, 1, 3, 5, ... one of the
    training kinds. A planted region that resizing to S x S leaves without a pixel makes the
    sample normal (its label follows the mask the network is scored on).

    Args:
        records: held-out manifest records (normal).
        root: dataset root.
        image_size: S in pixels.
        modality: preset of records without a ``modality`` field.
        synthetic: the resolved settings (``validation_kind``, ``validation_seed``).
    """

    def __init__(self, records: Sequence[dict], root: str | PathLike, image_size: int, modality: str | dict,
                 synthetic: SyntheticConfig) -> None:
        from aaclip_med.anomalies import SyntheticLabeld, synthetic_transform
        from aaclip_med.data.dataset import ManifestDataset
        from aaclip_med.data.dispatch import ModalityDispatch
        from aaclip_med.data.pipeline import inference_transforms

        self.data = list(records)  # what summarize_data fingerprints
        self.loaded = ManifestDataset(self.data, root, transform=None, with_mask=True)
        self.seed = int(synthetic.validation_seed)
        self.plant = {kinds: ModalityDispatch(lambda name, k=kinds: synthetic_transform(k, 1.0, name, self.loaded),
                                              modality)
                      for kinds in ((synthetic.validation_kind,), tuple(synthetic.kinds))}
        self.kinds = ((synthetic.validation_kind,), tuple(synthetic.kinds))  # for even and odd records
        self.prepare = ModalityDispatch(lambda name: inference_transforms(name, image_size, mask_key=Keys.MASK),
                                        modality)
        self.relabel = SyntheticLabeld(Keys.MASK)  # a region lost in resizing leaves a normal sample

    def __len__(self) -> int:
        return 2 * len(self.data)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"validation sample {index} out of range (0-{len(self) - 1})")
        record, planted = divmod(index, 2)
        sample = self.loaded[record]
        if planted:
            plant = self.plant[self.kinds[record % 2]]
            plant.set_random_state(seed=sample_seed(self.seed, 0, record))
            sample = plant(sample)
        return self.relabel(self.prepare(sample))
