from pydicom.data import get_testdata_file

from aaclip_med.data.loading import LoadSourced


def test_dictionary_twin_loads_each_key_and_keeps_others():
    out = LoadSourced(keys=["image", "mask"], allow_missing_keys=True)({"image": get_testdata_file("CT_small.dcm"), "label": 1.0})
    assert tuple(out["image"].shape) == (1, 128, 128)
    assert out["image"].meta["filename_or_obj"].endswith("CT_small.dcm")
    assert out["label"] == 1.0
