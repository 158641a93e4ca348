import pytest
import torch

from aaclip_med.data.augment import RandColorJitterd, augmentation_transforms


def test_stage_contents():
    assert not any(isinstance(t, RandColorJitterd) for t in augmentation_transforms(1, 32))
    stage2 = augmentation_transforms(2, 32)
    assert isinstance(stage2[-1], RandColorJitterd) and stage2[-1].jitter.adjust_prob == 0.7
    assert stage2[0].rand_rotate.range_x[1] == pytest.approx(torch.pi / 6)
    assert all(t.prob == 0.5 for t in stage2[:4])
    with pytest.raises(ValueError, match="stage"):
        augmentation_transforms(3, 32)
