import pytest
import torch
from monai.data import MetaTensor

from aaclip_med.data.modality import get_modality, list_modalities, preset_transforms
from aaclip_med.keys import Domain


def test_registry_lists_and_copies():
    names = list_modalities()
    assert {"ct", "ct-liver", "ct-brain", "ct-lung", "ct-bone", "ct-soft-tissue", "mri", "oct", "endoscopy", "photo"} <= set(names)
    preset = get_modality("ct")
    preset["window"] = "lung"
    assert get_modality("ct")["window"] == "abdomen"
    assert get_modality("photo")["domain"] == Domain.INDUSTRIAL


def test_unknown_lists_choices():
    with pytest.raises(ValueError, match="choose one of .*'photo'"):
        get_modality("xray")


def test_custom_ct_window_dict():
    (step,) = preset_transforms({"kind": "ct", "window": (50, 100)})
    assert float(step({"image": torch.tensor([[[50.0]]])})["image"]) == 0.5


def test_endoscopy_black_frame_removed_with_mask():
    img = torch.zeros(3, 10, 12)
    img[:, 2:8, 3:9] = 200.0
    mask = torch.zeros(1, 10, 12)
    mask[0, 4, 4] = 1
    preset = get_modality("endoscopy") | {"remove_black_frame": True}
    d = {"image": MetaTensor(img), "mask": MetaTensor(mask)}
    for step in preset_transforms(preset, "image", "mask"):
        d = step(d)
    assert tuple(d["image"].shape) == (3, 6, 6) and tuple(d["mask"].shape) == (1, 6, 6)
    assert float(d["mask"][0, 2, 1]) == 1 and float(d["image"].min()) == pytest.approx(200 / 255)


# --- modality auto --------------------------------------------------------------------------------

from aaclip_med.data.loading import DICOM_MODALITY, INTENSITY_MAX  # noqa: E402
from aaclip_med.data.modality import AutoModalityd, detect_modality  # noqa: E402


def _image(values, **meta):
    return MetaTensor(torch.as_tensor(values, dtype=torch.float32), meta=meta)


def test_auto_follows_the_dicom_modality_tag():
    hu_like = -1000 * torch.ones(1, 4, 4, 2)  # all air: would be CT by statistics
    assert detect_modality(_image(hu_like, **{DICOM_MODALITY: "MR"})).name == "mri"
    assert detect_modality(_image(torch.zeros(1, 4, 4, 2), **{DICOM_MODALITY: "CT"})).name == "ct"
    assert detect_modality(_image(torch.zeros(3, 4, 4), **{DICOM_MODALITY: "ES"})).name == "endoscopy"
    assert detect_modality(_image(torch.zeros(1, 4, 4), **{DICOM_MODALITY: "OPT"})).reason == "DICOM Modality OPT"
    other = detect_modality(_image(hu_like, **{DICOM_MODALITY: "PT"}))  # no preset: statistics decide
    assert other.name == "ct" and "DICOM Modality PT has no preset" in other.reason


def test_auto_for_plain_images():
    assert detect_modality(_image(torch.zeros(3, 4, 4), **{INTENSITY_MAX: 255.0})).name == "photo"
    assert detect_modality(_image(torch.zeros(1, 4, 4), **{INTENSITY_MAX: 255.0})).name == "photo"
    assert detect_modality(_image(torch.zeros(1, 4, 4), **{INTENSITY_MAX: 65535.0})).name == "mri"


def test_auto_for_nifti_hounsfield_air_rule():
    body = torch.full((1, 10, 10, 4), 40.0)
    body[0, 0, :1, :] = -1000.0  # 1 of 100 pixels in every slice is air: exactly 1 %
    assert detect_modality(_image(body)).name == "ct"
    body[0, 0, 0, 0] = 40.0  # just under 1 %
    choice = detect_modality(_image(body))
    assert choice.name == "mri" and "under 1%" in choice.reason
    brain = torch.rand(1, 10, 10, 4) * 800  # MR: arbitrary positive units
    assert detect_modality(_image(brain)).name == "mri"


def test_auto_transform_applies_the_detected_preset():
    hu = _image(torch.tensor([[[-160.0, 40.0, 240.0]]]))
    hu[0, 0, 0] = -1000.0
    out = AutoModalityd("image")({"image": hu})["image"]
    assert out.tolist() == [[[0.0, 0.5, 1.0]]]  # the abdomen window of the ct preset
    (step,) = preset_transforms("auto")
    assert isinstance(step, AutoModalityd)
