"""The top-level Python API resolves every promised name, lazily."""

import subprocess
import sys

import aaclip_med


def test_every_api_name_resolves():
    for name in aaclip_med.__all__:
        assert getattr(aaclip_med, name) is not None, name


def test_import_is_light_and_unknown_names_raise():
    code = "import sys, aaclip_med; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    try:
        aaclip_med.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:  # pragma: no cover - the line above must raise
        raise AssertionError("unknown attribute did not raise")
