"""The report folder a clinician opens: provenance, case table, tiles and the viewer's files.

Built once from the small sample and the tiny random-weight model (``sample_report``); the browser
tests (``test_report_browser.py``) open the same folder in Chromium.
"""

from __future__ import annotations

import base64
import json
import os
import re

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from aaclip_med.data.loading import load_image as load_source
from aaclip_med.evaluation.cases import SourceVolumes, sample_label
from aaclip_med.evaluation.predictions import load_samples, read_jsonl
from aaclip_med.evaluation.provenance import NOT_RECORDED, provenance_rows
from aaclip_med.precision import resolve_precision


def _cases_js(report_dir) -> dict:
    text = (report_dir / "viewer" / "cases.js").read_text()
    return json.loads(text[text.index("=") + 1 :].strip().rstrip(";"))


def _case(report_dir, class_name, label=None):
    return next(c for c in _cases_js(report_dir)["cases"]
                if c["class_name"] == class_name and label in (None, c["label"]))


def test_provenance_comes_first_and_names_the_run(sample_report):
    report_dir, _, _ = sample_report
    page = (report_dir / "report.html").read_text()
    assert page.index('id="provenance"') < page.index("<h2>Metrics</h2>") < page.index('id="cases"')
    rows = dict(provenance_rows(json.loads((report_dir / "report.json").read_text())))
    assert rows["Backbone"] == "aaclip-tiny at 112 x 112 px"
    assert rows["CLIP weights"].startswith("RANDOM")
    # the sample run used precision "auto": bf16 on a CPU with native bf16, fp32 elsewhere
    assert rows["Precision"] == resolve_precision("auto", "cpu") and rows["Domain"] == "medical"
    assert rows["Calibration"] == "none (raw scores)"
    assert rows["Protocol"].startswith("deployment")
    assert "torch " in rows["Package versions at inference"] and "monai " in rows["Package versions at inference"]
    for value in rows.values():
        assert html_escaped(value) in page


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_provenance_shows_file_names_and_hashes_never_folders():
    run = {"backbone": "ViT-L-14-336", "image_size": 518, "pretrained": "/home/dr_smith/weights/ViT-L-14-336px.pt",
           "pretrained_sha256": "ab" * 32, "weights": "C:\\sites\\ward7\\adapters.safetensors", "weights_sha256": "cd" * 32,
           "precision": "bf16", "calibration": {"classes": {"brain": {}, "liver": {}}}}
    rows = dict(provenance_rows({"protocol": "paper", "run": run}))
    assert rows["CLIP weights"] == f"ViT-L-14-336px.pt · sha256 {'ab' * 32}"
    assert rows["Adapters"] == f"adapters.safetensors · sha256 {'cd' * 32}"
    assert rows["Calibration"] == "normal-reference calibration of brain, liver"
    assert "dr_smith" not in str(rows) and "ward7" not in str(rows)
    assert rows["Protocol"].startswith("paper: maps and global scores min-max normalised")
    tag = dict(provenance_rows({"protocol": "paper", "run": {"pretrained": "openai"}}))
    assert tag["CLIP weights"] == "open_clip tag 'openai' (no file hash recorded)"
    empty = dict(provenance_rows({"protocol": "deployment", "run": {}}))
    assert empty["CLIP weights"] == empty["Adapters"] == empty["Precision"] == NOT_RECORDED
    legacy = dict(provenance_rows({"run": {"adapters": {"file": "a/b/adapters.safetensors", "sha256": "ef" * 32}}}))
    assert legacy["Adapters"] == f"adapters.safetensors · sha256 {'ef' * 32}"


def test_case_table_has_one_row_per_source_with_its_highest_score(sample_report):
    report_dir, manifest, pred = sample_report
    page = (report_dir / "report.html").read_text()
    table = page[page.index('id="cases"') :]
    table = table[: table.index("</table>")]
    assert 'class="cases sortable"' in table
    lines = read_jsonl(pred / "predictions.jsonl")
    entries = read_jsonl(manifest)
    for source in {e["image_path"] for e in entries}:
        mine = [(ln["image_score"], e.get("slice_index")) for ln, e in zip(lines, entries, strict=True) if e["image_path"] == source]
        score, top = max(mine, key=lambda x: x[0])
        row = re.search(rf"<tr[^>]*><td>[^<]*</td><td>{re.escape(source)}</td>(.*?)</tr>", table)
        assert row, source
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
        assert float(re.search(r'data-sort="([^"]+)"', row.group(1)).group(1)) == pytest.approx(score, rel=1e-6)
        assert cells[4] == ("" if top is None else str(top))
        modality = entries[[e["image_path"] for e in entries].index(source)]["modality"]
        assert cells[1] == modality
    assert table.count("<tr") == 1 + len({e["image_path"] for e in entries})


def test_volume_tiles_show_the_anatomy_under_the_map(sample_report):
    _, manifest, pred = sample_report
    samples = load_samples(manifest, pred, "medical")
    ct = next(s for s in samples if s.class_name == "ct" and s.slice_index == 2)
    sources = SourceVolumes(manifest.parent)
    shown = sources.display(ct)
    loaded = np.asarray(load_source(manifest.parent / ct.image_path)[0, ..., 2])
    assert shown.shape == loaded.shape and 0 <= shown.min() and shown.max() <= 1
    low, high = sources.volume(ct.image_path).display_range
    np.testing.assert_allclose(shown, np.clip((loaded - low) / (high - low), 0, 1), atol=1e-6)
    assert sample_label(ct, 4) == "ct · ct/ct_study · slice 2 of 4"
    mri = next(s for s in samples if s.class_name == "mri")
    assert re.fullmatch(r"mri · mri/mri_t1\.nii\.gz · slice \d+ of 4", sample_label(mri, 4))
    photo = next(s for s in samples if s.class_name == "brick")
    pixels = np.asarray(Image.open(manifest.parent / photo.image_path).convert("RGB"), dtype=np.float64)
    np.testing.assert_allclose(sources.display(photo) * 255.0, pixels, atol=1e-3)  # plain images as they are, /255


@pytest.mark.parametrize("class_name", ["ct", "mri"])
def test_viewer_volumes_are_the_evaluated_maps_on_the_source_grid(sample_report, class_name):
    report_dir, manifest, pred = sample_report
    case = _case(report_dir, class_name)
    source = load_source(manifest.parent / case["image_path"])
    written = {name: nib.load(str(report_dir / case["files"][name])) for name in ("source", "anomaly", "truth")}
    for image in written.values():
        assert image.shape == tuple(source.shape[1:]) == tuple(case["dims"])
        np.testing.assert_allclose(image.affine, np.asarray(source.affine), atol=1e-4)
    np.testing.assert_allclose(written["source"].get_fdata(), np.asarray(source[0]), atol=1e-3)
    anomaly, truth = written["anomaly"].get_fdata(), written["truth"].get_fdata()
    samples = [s for s in load_samples(manifest, pred, "medical") if s.image_path == case["image_path"]]
    assert sorted(s.slice_index for s in samples) == case["slices"]
    for sample in samples:  # deployment protocol: the maps as written
        np.testing.assert_array_equal(anomaly[..., sample.slice_index], np.load(pred / sample.map_path))
    mask = np.asarray(nib.load(str(manifest.parent / samples[0].mask_path)).dataobj)
    np.testing.assert_array_equal(truth[..., case["slices"]], mask[..., case["slices"]])
    assert anomaly[tuple(case["peak_voxel"])] == pytest.approx(case["peak_value"]) == pytest.approx(np.nanmax(anomaly))
    peak_mm = written["anomaly"].affine @ np.array([*case["peak_voxel"], 1.0])
    np.testing.assert_allclose(peak_mm[:3], case["peak_mm"], atol=1e-4)
    encoded = (report_dir / case["files"]["script"]).read_text()
    for name in ("source", "anomaly", "truth"):  # the page opened from disk gets the very same bytes
        blob = re.search(rf'"{name}": "([^"]+)"', encoded).group(1)
        assert base64.b64decode(blob) == (report_dir / case["files"][name]).read_bytes()


def test_viewer_keeps_a_nifti_sources_header(sample_report):
    report_dir, manifest, _ = sample_report
    case = _case(report_dir, "mri")
    source = nib.load(str(manifest.parent / case["image_path"]))
    for name in ("source", "anomaly", "truth"):
        header = nib.load(str(report_dir / case["files"][name])).header
        assert header.get_xyzt_units() == source.header.get_xyzt_units()
        assert (int(header["sform_code"]), int(header["qform_code"])) == (
            int(source.header["sform_code"]), int(source.header["qform_code"]))


def test_unpredicted_slices_are_nan_not_zero(sample_report, tmp_path):
    """A manifest that lists some slices only: the others are 'not predicted' in the viewer."""
    from aaclip_med.evaluation.evaluate import evaluate_predictions

    report_dir, manifest, pred = sample_report
    entries, lines = read_jsonl(manifest), read_jsonl(pred / "predictions.jsonl")
    keep = [n for n, e in enumerate(entries) if e["class_name"] == "mri" and e["slice_index"] in (1, 2)]
    (tmp_path / "pred" / "maps").mkdir(parents=True)
    for n in keep:
        (tmp_path / "pred" / lines[n]["map_path"]).write_bytes((pred / lines[n]["map_path"]).read_bytes())
    (tmp_path / "pred" / "predictions.jsonl").write_text("".join(json.dumps(lines[n]) + "\n" for n in keep))
    part = tmp_path / "manifest.jsonl"
    part.write_text("".join(json.dumps(entries[n]) + "\n" for n in keep))
    evaluate_predictions(part, manifest.parent, tmp_path / "pred", tmp_path / "report", examples_per_group=1)
    case = _case(tmp_path / "report", "mri")
    anomaly = nib.load(str(tmp_path / "report" / case["files"]["anomaly"])).get_fdata()
    assert case["slices"] == [1, 2]
    assert np.isnan(anomaly[..., [0, 3]]).all() and np.isfinite(anomaly[..., [1, 2]]).all()


def test_example_images_get_before_and_after(sample_report):
    report_dir, manifest, pred = sample_report
    case = _case(report_dir, "retina", "anomalous")
    before = np.asarray(Image.open(report_dir / case["files"]["image"]))
    source = np.asarray(Image.open(manifest.parent / case["image_path"]).convert("RGB"))
    np.testing.assert_array_equal(before, source)
    after = np.asarray(Image.open(report_dir / case["files"]["overlay"]))
    assert after.shape == source.shape and not np.array_equal(after, source)
    # the ground-truth outline is pure green, on the mask's border
    mask = np.asarray(Image.open(manifest.parent / case["image_path"].replace("images", "masks"))) > 0
    green = np.all(after == (0, 255, 0), axis=-1)
    assert green.any() and not (green & ~mask).any()


def test_report_files_get_the_umask_permissions(sample_report):
    report_dir, _, _ = sample_report
    umask = os.umask(0)
    os.umask(umask)
    wanted = 0o666 & ~umask
    for path in [report_dir / "report.html", report_dir / "viewer.html", *(report_dir / "viewer").rglob("*")]:
        if path.is_file():
            assert path.stat().st_mode & 0o777 == wanted, path


def test_the_report_folder_needs_no_network(sample_report):
    report_dir, _, _ = sample_report
    pages = [report_dir / "report.html", report_dir / "viewer.html", report_dir / "viewer" / "viewer.js",
             report_dir / "viewer" / "cases.js"]
    for page in pages:
        text = page.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text), page
        assert "https://" not in text and "http://" not in text, page
    referenced = re.findall(r'(?:src|href)="([^"#]+)"', (report_dir / "viewer.html").read_text())
    assert referenced and all((report_dir / ref).is_file() for ref in referenced if not ref.startswith("data:"))
    licence = (report_dir / "viewer" / "LICENSE-niivue").read_text()
    assert "BSD 2-Clause" in licence and "Niivue" in licence


def test_vendored_niivue_is_the_documented_file():
    """The file, its version, its hash and its licence text are what resources/niivue/README.md says."""
    import hashlib
    from importlib import resources

    from aaclip_med.evaluation.viewer import NIIVUE_VERSION

    folder = resources.files("aaclip_med") / "resources" / "niivue"
    script = (folder / "niivue.umd.js").read_bytes()
    readme = (folder / "README.md").read_text()
    assert f"sha256: `{hashlib.sha256(script).hexdigest()}`" in readme
    assert f'{{version:"{NIIVUE_VERSION}"}}'.encode() in script and f"@niivue/niivue` {NIIVUE_VERSION}" in readme
    assert (folder / "LICENSE").read_text().startswith("BSD 2-Clause License")
