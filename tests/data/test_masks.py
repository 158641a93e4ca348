"""The one mask rule and reader (spec section 9), and PIL-exact mask resizing."""

import numpy as np
import pytest
import torch
from PIL import Image

from aaclip_med.data.errors import DataError
from aaclip_med.data.masks import LOSSY_THRESHOLD, mask_foreground, read_mask, resize_mask
from tests._synthetic import write_nifti


def _drawn_mask(size=64):
    """A polyp-like disc (532 pixels); JPEG rings around its edge but keeps it above 127."""
    rows, cols = np.mgrid[:size, :size]
    return ((((rows - 29.5) ** 2 + (cols - 35.3) ** 2) < 13**2) * 255).astype(np.uint8)


def test_rule_literals():
    assert LOSSY_THRESHOLD == 127
    values = torch.tensor([[0, 1, 3, 127, 128, 255]])
    assert mask_foreground(values, lossy=False).tolist() == [[False, True, True, True, True, True]]
    assert mask_foreground(values, lossy=True).tolist() == [[False, False, False, False, True, True]]


def test_jpeg_mask_counts_the_drawn_pixels(tmp_path):
    drawn = _drawn_mask()
    Image.fromarray(drawn).save(tmp_path / "m.jpg", quality=75)
    decoded = np.asarray(Image.open(tmp_path / "m.jpg"))
    assert int((decoded != 0).sum()) > int((drawn != 0).sum())  # JPEG rings: non-zero would over-count
    mask = read_mask(tmp_path / "m.jpg")
    assert mask.dtype == torch.float32 and tuple(mask.shape) == (1, 64, 64)
    np.testing.assert_array_equal(mask[0].numpy(), (drawn != 0).astype(np.float32))


def test_lossless_masks_any_non_zero_value(tmp_path):
    ids = np.zeros((5, 7), np.uint8)
    ids[1, 1:3], ids[3, 4] = 1, 3  # VisA: one id per defect
    Image.fromarray(ids).save(tmp_path / "ids.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "ids.png")[0].numpy(), (ids != 0).astype(np.float32))
    palette = Image.fromarray(ids, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255, 0] + [0] * 756)
    palette.save(tmp_path / "palette.png")
    # as PIL's convert("L"): index 1 (red) and 3 (green) are anomalous
    np.testing.assert_array_equal(read_mask(tmp_path / "palette.png")[0].numpy(), (ids != 0).astype(np.float32))


def test_rgb_mask_follows_pil_luminance(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 255, 255)
    rgb[0, 1] = (0, 0, 1)  # luminance rounds to 0: background for PIL's convert("L") as well
    rgb[1, 2] = (0, 80, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    expected = np.asarray(Image.open(tmp_path / "rgb.png").convert("L")) != 0
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png")[0].numpy(), expected.astype(np.float32))
    assert expected.tolist() == [[True, False, False], [False, False, True]]


def test_volume_masks_are_cut_at_the_slice(tmp_path):
    data = np.zeros((4, 5, 3), np.float32)
    data[1, 2, 1] = 2.0
    path = write_nifti(tmp_path / "m.nii.gz", data)
    assert float(read_mask(path, 1).sum()) == 1.0 and float(read_mask(path, 0).sum()) == 0.0
    assert tuple(read_mask(path, 1).shape) == (1, 4, 5)
    with pytest.raises(DataError, match="m.nii.gz: is a volume; the manifest line needs a 'slice_index'"):
        read_mask(path)


def test_missing_or_broken_mask_names_the_file(tmp_path):
    with pytest.raises(DataError, match="gone.png: file not found"):
        read_mask(tmp_path / "gone.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png"):
        read_mask(tmp_path / "bad.png")


@pytest.mark.parametrize(("height", "width", "size"), [(1000, 1000, 518), (224, 224, 518), (512, 512, 518),
                                                       (1500, 1000, 518), (574, 500, 518), (45, 61, 28)])
def test_resize_is_pil_nearest_exactly(height, width, size):
    rng = np.random.default_rng(height + width)
    mask = rng.random((height, width)) > 0.5
    expected = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) != 0
    out = resize_mask(mask, (size, size))
    assert out.dtype == torch.bool and tuple(out.shape) == (size, size)
    np.testing.assert_array_equal(out.numpy(), expected)
    stacked = resize_mask(torch.from_numpy(mask)[None].float(), (size, size))
    np.testing.assert_array_equal(stacked[0].numpy(), expected)


def test_pil_nearest_is_not_torch_nearest_exact():
    # why masks go through PIL: its fixed-point NEAREST picks other source columns than
    # floor((x + 0.5) * in / out) at a few places (here 2 of 518 for a 1000-pixel side)
    source = np.arange(1000, dtype=np.int32)[None].repeat(2, 0)
    pil = np.asarray(Image.fromarray(source, mode="I").resize((518, 2), Image.NEAREST))[0]
    exact = np.floor((np.arange(518) + 0.5) * 1000 / 518).astype(np.int32)
    assert int((pil != exact).sum()) == 2
