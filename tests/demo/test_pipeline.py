"""The demo pipeline at reduced size (tiny backbone, small sample): every promised output exists."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from aaclip_med.data import load_image
from aaclip_med.demo.pipeline import RANDOM_BANNER, DemoSettings, run_demo

SETTINGS = DemoSettings(size="small", backbone="aaclip-tiny", backbone_weights="random", batch_size=4)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return run_demo(tmp_path_factory.mktemp("demo") / "out", SETTINGS)


def test_overlays_lie_on_the_source_grid(demo):
    root = demo.manifest.parent
    sources = {"ct_study": root / "ct" / "ct_study", "mri_t1": root / "mri" / "mri_t1.nii.gz"}
    assert sorted(p.name for p in demo.overlays) == ["ct_study_anomaly.nii.gz", "mri_t1_anomaly.nii.gz"]
    for overlay_path in demo.overlays:
        source = load_image(sources[overlay_path.name.removesuffix("_anomaly.nii.gz")])
        overlay = nib.load(overlay_path)
        assert overlay.shape == tuple(source.shape[1:])
        np.testing.assert_allclose(overlay.affine, np.asarray(source.affine), atol=1e-4)
        assert np.isfinite(np.asarray(overlay.dataobj)).all()


def test_png_blends_have_the_image_size(demo):
    records = [json.loads(line) for line in demo.manifest.read_text().splitlines()]
    images = [r for r in records if "slice_index" not in r]
    assert len(demo.blends) == len(images)
    for blend in demo.blends:
        record = next(r for r in images if r["image_path"].endswith(blend.name.replace("_blend", "")))
        source = Image.open(demo.manifest.parent / record["image_path"])
        assert Image.open(blend).size == source.size


def test_report_scores_and_figures(demo):
    html = demo.report_html.read_text()
    assert demo.report["random_weights"] is True and "random" in html.lower()
    for name in ("report.json", "metrics.csv", "report.md"):
        assert (demo.out_dir / "report" / name).is_file()
    predictions = (demo.out_dir / "predictions" / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == len(demo.manifest.read_text().splitlines())
    assert demo.scores and all(json.loads(p.read_text()) for p in demo.scores)
    for figure in demo.figures:
        assert Image.open(figure).size[0] > 100
    summary = (demo.out_dir / "SUMMARY.md").read_text()
    assert summary.startswith(f"> **{RANDOM_BANNER}**")
    # image AUROC is defined for every class: each has normal and anomalous samples
    assert all(0.0 <= row["image_auroc"] <= 1.0 for row in demo.report["classes"])


def test_rerun_replaces_outputs_and_refuses_foreign_folders(demo, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not written by"):
        run_demo(tmp_path, SETTINGS)
    assert (tmp_path / "notes.txt").read_text() == "mine"
