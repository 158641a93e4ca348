"""Published numbers are shipped as package data and matched by dataset name."""

from __future__ import annotations

from aaclip_med.evaluation.published import get_published, list_published


def test_published_numbers_of_spec_section_10():
    assert get_published("MVTec-AD")["pixel_auroc"] == 91.9
    assert get_published("mvtec")["image_auroc"] == 90.5
    assert get_published("Brain MRI")["image_auroc"] == 79.3
    assert get_published("cvc_300")["pixel_auroc"] == 96.8
    assert get_published("Kvasir")["image_auroc"] is None
    assert get_published("my hospital") is None
    assert len(list_published()) == 10
