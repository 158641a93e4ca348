"""Preprocessing of 8-bit files against the published pipeline, written out with PIL + torchvision.

Real images shipped in installed packages: scikit-image's bundled photos and medical images
(retina fundus JPEG, microaneurysms), matplotlib's photo and its MRI slice (raw 16-bit, written
here as an 8-bit PNG the way BMAD's slices are stored). Masks are synthetic.
"""

import gzip
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import skimage
import torch
from monai.data import MetaTensor
from monai.transforms import Resize
from PIL import Image
from torchvision import transforms as tv

from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD
from aaclip_med.data.dataset import ManifestDataset
from aaclip_med.data.intensity import CTWindow, MRINormalize
from aaclip_med.data.loading import load_image
from aaclip_med.data.pipeline import inference_transforms
from aaclip_med.data.resize import ResizeImage, ResizeImaged, ResizeMask, ResizeMaskd

SKIMAGE = Path(skimage.__file__).parent / "data"
MPL = Path(matplotlib.get_data_path()) / "sample_data"


def _published_image(path, size):
    """The public code's test transform: RGB, PIL BICUBIC to S x S, ToTensor, CLIP Normalize."""
    steps = tv.Compose([tv.Resize((size, size), Image.BICUBIC), tv.ToTensor(), tv.Normalize(CLIP_MEAN, CLIP_STD)])
    return steps(Image.open(path).convert("RGB"))


def _published_mask(path, size):
    """The public code's mask transform: L, PIL NEAREST, ToTensor, != 0."""
    steps = tv.Compose([tv.Resize((size, size), Image.NEAREST), tv.ToTensor()])
    return (steps(Image.open(path).convert("L")) != 0).float()


@pytest.fixture(scope="module")
def mri_png(tmp_path_factory):
    """matplotlib's MRI slice (256 x 256, 16-bit raw) stored as an 8-bit PNG, as BMAD stores its slices."""
    raw = np.frombuffer(gzip.open(MPL / "s1045.ima.gz").read(), np.uint16).reshape(256, 256).astype(np.float64)
    path = tmp_path_factory.mktemp("bmad") / "00042_60.png"
    Image.fromarray(np.round(raw / raw.max() * 255).astype(np.uint8)).save(path)
    return path


def _blob_mask(path, shape, seed):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    cy, cx = rng.uniform(0.3, 0.7) * shape[0], rng.uniform(0.3, 0.7) * shape[1]
    mask = ((rows - cy) ** 2 / (0.15 * shape[0]) ** 2 + (cols - cx) ** 2 / (0.1 * shape[1]) ** 2) < 1
    Image.fromarray((mask * 255).astype(np.uint8)).save(path)
    return path


CASES = [
    (SKIMAGE / "astronaut.png", "photo"),
    (SKIMAGE / "chelsea.png", "photo"),
    (SKIMAGE / "coins.png", "photo"),
    (MPL / "grace_hopper.jpg", "photo"),
    (SKIMAGE / "retina.jpg", "endoscopy"),
    (SKIMAGE / "microaneurysms.png", "oct"),
    (SKIMAGE / "camera.png", "mri"),
    (SKIMAGE / "camera.png", "ct"),
    ("mri", "mri"),
    ("mri", "ct-brain"),
    ("mri", "oct"),
]


@pytest.mark.parametrize(("source", "modality"), CASES)
@pytest.mark.parametrize("size", [518, 224])
def test_8bit_files_match_the_published_pipeline(tmp_path, mri_png, source, modality, size):
    source = mri_png if source == "mri" else Path(source)
    image_path = tmp_path / source.name
    image_path.write_bytes(source.read_bytes())
    height, width = np.asarray(Image.open(image_path)).shape[:2]
    mask_path = _blob_mask(tmp_path / "mask.png", (height, width), size + height)
    record = {"image_path": image_path.name, "label": 1.0, "class_name": "x", "mask_path": mask_path.name}
    out = ManifestDataset([record], tmp_path, transform=inference_transforms(modality, size, mask_key="mask"))[0]
    image, mask = torch.as_tensor(out["image"]), torch.as_tensor(out["mask"])
    reference = _published_image(image_path, size)
    assert tuple(image.shape) == (3, size, size)
    assert float((image - reference).abs().max()) <= 1e-3
    torch.testing.assert_close(mask, _published_mask(mask_path, size), rtol=0, atol=0)
    assert float(mask.sum()) > 0


def test_monai_bicubic_would_not_match():
    # what the pipeline did before: MONAI's bicubic (a = -0.75, no antialias) on the [0, 1] image
    path = SKIMAGE / "astronaut.png"
    image = load_image(path) / 255.0
    monai = (Resize((518, 518), mode="bicubic")(image.as_tensor()).clamp(0, 1) - torch.tensor(CLIP_MEAN).view(3, 1, 1))
    monai = monai / torch.tensor(CLIP_STD).view(3, 1, 1)
    assert float((monai - _published_image(path, 518)).abs().max()) > 0.1


def test_8bit_rule_in_ct_and_mri_presets():
    gray = torch.tensor([[[0.0, 64.0, 255.0]]])
    png = MetaTensor(gray, meta={"intensity_max": 255.0})
    expected = [0.0, 64.0 / 255.0, 1.0]  # the published runs' ToTensor: / 255, no window, no percentiles
    assert CTWindow("abdomen")(png).flatten().tolist() == pytest.approx(expected)
    assert MRINormalize()(png).flatten().tolist() == pytest.approx(expected)
    # HU values (DICOM / NIfTI): the window applies: -160..240 HU -> 0..1
    hu = MetaTensor(torch.tensor([[[-160.0, 40.0, 240.0]]]))
    assert CTWindow("abdomen")(hu).flatten().tolist() == pytest.approx([0.0, 0.5, 1.0])
    mr = MetaTensor(torch.tensor([[[0.0, 10.0, 30.0]]]))
    assert MRINormalize(lower=0.0, upper=100.0)(mr).flatten().tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_other_sources_keep_monai_bicubic():
    ramp = torch.linspace(0, 1, 30 * 20).reshape(1, 30, 20).repeat(3, 1, 1)
    float_image = MetaTensor(ramp.clone(), meta={"intensity_max": None})
    out = ResizeImage(14)(float_image)
    torch.testing.assert_close(torch.as_tensor(out), Resize((14, 14), mode="bicubic")(ramp), rtol=0, atol=1e-6)
    sixteen_bit = MetaTensor(ramp.clone(), meta={"intensity_max": 65535.0})
    torch.testing.assert_close(torch.as_tensor(ResizeImage(14)(sixteen_bit)), torch.as_tensor(out))


def test_twins_and_meta():
    image = MetaTensor(torch.arange(12.0).reshape(1, 3, 4).repeat(3, 1, 1) / 255.0, meta={"intensity_max": 255.0})
    mask = MetaTensor(torch.tensor([[[0.0, 0.0, 1.0, 1.0]] * 3]), meta={"slice_index": 4})
    out = ResizeMaskd("mask", 8)(ResizeImaged("image", 8)({"image": image, "mask": mask}))
    expected = np.asarray(Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).resize((8, 8), Image.BICUBIC))
    np.testing.assert_array_equal((out["image"][1] * 255).round().numpy(), expected)
    assert out["image"].meta["intensity_max"] == 255.0 and out["mask"].meta["slice_index"] == 4
    assert out["mask"][0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="image_size"):
        ResizeMask(0)
