import torch

from aaclip_med.data.augment import RandColorJitterd


def test_image_only_one_draw_for_all_keys():
    img = torch.rand(3, 6, 6)
    mask = torch.ones(1, 6, 6)
    t = RandColorJitterd(["image", "other"], prob=1.0).set_random_state(1)
    out = t({"image": img, "other": img.clone(), "mask": mask})
    torch.testing.assert_close(out["image"], out["other"])
    assert not torch.equal(out["image"], img)
    assert torch.equal(out["mask"], mask)
