"""The MONAI Deploy App SDK application on a DICOM folder (needs the ``deploy`` extra: skipped without it
locally, failed without it on CI, where .ci/run installs it).

The app's SEG / Parametric Map must be those of ``aaclip-med infer --dicom-out`` on the same series:
the app runs the same processing, on the SDK's (Holoscan) runtime.
"""

from __future__ import annotations

import shutil

import numpy as np
import pydicom

from tests._tools import require_module

require_module("monai.deploy.core", "pip install 'aaclip-med[deploy]'")

from aaclip_med.cli import main  # noqa: E402
from aaclip_med.inference import InferenceOptions  # noqa: E402
from aaclip_med.pacs import series_key  # noqa: E402
from aaclip_med.pacs.deploy_app import AAClipDeployApp  # noqa: E402
from aaclip_med.pacs.deploy_app import main as deploy_main  # noqa: E402
from tests.conftest import make_tiny_model  # noqa: E402
from tests.pacs.conftest import THRESHOLD, TINY, write_ct, write_mr, write_sr  # noqa: E402


def test_app_writes_the_objects_of_infer(tmp_path, capsys):
    ct = write_ct(tmp_path / "in" / "a" / "ct", seed=21, depth=3)
    mr = write_mr(tmp_path / "in" / "b", seed=22, depth=2)
    write_sr(tmp_path / "in" / "b" / "report.dcm", pydicom.dcmread(mr[0]).StudyInstanceUID)
    model = make_tiny_model(0).eval()
    app = AAClipDeployApp(model, InferenceOptions(threshold=THRESHOLD, device="cpu"), tmp_path / "in", tmp_path / "out")
    app.run()
    keys = {name: series_key(pydicom.dcmread(files[0]).SeriesInstanceUID) for name, files in (("ct", ct), ("mr", mr))}
    assert sorted(app.statuses.values()) == ["done", "done", "ignored"]  # the SR is not an image series
    for name, files, preset in (("ct", ct, "ct"), ("mr", mr, "mr")):
        source = tmp_path / f"only_{name}"
        shutil.copytree(files[0].parent, source, ignore=shutil.ignore_patterns("report.dcm"))
        assert main(["infer", str(source), "--out", str(tmp_path / f"infer_{name}"), "--dicom-out", "--modality", preset,
                     "--threshold", str(THRESHOLD), *TINY]) == 0
        for suffix in ("seg", "pmap"):
            ours = pydicom.dcmread(tmp_path / "out" / "results" / keys[name] / f"{keys[name]}_{suffix}.dcm")
            reference = pydicom.dcmread(tmp_path / f"infer_{name}" / f"only_{name}_{suffix}.dcm")
            assert ours.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(files[0]).SeriesInstanceUID
            np.testing.assert_array_equal(ours.pixel_array, reference.pixel_array)
    capsys.readouterr()


def test_app_command_line(tmp_path, capsys):
    write_ct(tmp_path / "in" / "ct", seed=23, depth=2)
    code = deploy_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--threshold", str(THRESHOLD), *TINY])
    assert code == 0
    assert "1 series done or ignored, 0 failed" in capsys.readouterr().out
    assert len(list((tmp_path / "out" / "results").glob("*/*_seg.dcm"))) == 1
