import pytest
import torch

from aaclip_med.data.intensity import CTWindow, get_ct_window, list_ct_windows

DOCUMENTED = {  # (low, high) HU of the table in aaclip_med/data/intensity.py (= ct_windows.json)
    "abdomen": (-160, 240), "liver": (-45, 105), "brain": (0, 80),
    "lung": (-1350, 150), "bone": (-500, 1300), "soft_tissue": (-125, 225),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_windows(name):
    low, high = DOCUMENTED[name]
    hu = torch.tensor([[[low - 100.0, low, (low + high) / 2, high, high + 100.0]]])
    out = CTWindow(name)(hu)
    torch.testing.assert_close(out[0, 0], torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_all_windows_documented():
    assert set(list_ct_windows()) == set(DOCUMENTED)
    for name, (low, high) in DOCUMENTED.items():
        assert get_ct_window(name) == ((low + high) / 2, high - low)


def test_custom_and_invalid():
    torch.testing.assert_close(CTWindow((0, 100))(torch.tensor([[[25.0]]])), torch.tensor([[[0.75]]]))
    with pytest.raises(ValueError, match="unknown CT window 'liverr'"):
        CTWindow("liverr")
    with pytest.raises(ValueError, match="width"):
        CTWindow((0, 0))
