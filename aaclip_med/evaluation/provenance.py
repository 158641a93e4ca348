"""What produced the numbers of a report: model, weight files and their sha256, settings, versions.

Read from ``run.json`` (written by inference, see ``aaclip_med/inference/run_info.py``) as the
report stores it under ``run``, plus the evaluation's own settings. Older or hand-written run
files name things differently (``adapters`` as a path or as ``{"file", "sha256"}``,
``backbone_weights_sha256``), so each entry is looked up under every name it has had; what is not
recorded is shown as such, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath

from aaclip_med.identity import adapters_file, clip_weights_file, is_random_weights

__all__ = ["provenance_rows", "file_entry", "NOT_RECORDED"]

NOT_RECORDED = "not recorded"

_PROTOCOLS = {
    "deployment": "deployment: the scores as inference wrote them (what one new patient gets)",
    "paper": "paper: maps and global scores min-max normalised per class over this test set (benchmarks only)",
}


def _name(path: object) -> str:
    """The file name of a path written on any system (never the folders: they may name people or sites)."""
    text = str(path)
    return PureWindowsPath(text).name if "\\" in text else PurePosixPath(text).name


def file_entry(path: object, sha256: object) -> str:
    """``name · sha256 <hex>`` for a weight file; a tag (e.g. ``openai``) is shown as a tag."""
    if path in (None, ""):
        return NOT_RECORDED
    name = _name(path)
    is_file = "/" in str(path) or "\\" in str(path) or "." in name
    if not is_file:
        return f"open_clip tag '{name}'" + (f" · sha256 {sha256}" if sha256 else " (no file hash recorded)")
    return f"{name} · sha256 {sha256}" if sha256 else f"{name} (sha256 {NOT_RECORDED})"


def _clip_weights(run: Mapping) -> str:
    pretrained, sha256 = clip_weights_file(run)
    if run.get("random_weights") is not True and pretrained is None and "pretrained" not in run:
        return NOT_RECORDED
    if run.get("random_weights") is True or is_random_weights(pretrained):
        return "RANDOM (no pretrained CLIP weights: the numbers do not measure the method)"
    return file_entry(pretrained, sha256)


def _adapters(run: Mapping) -> str:
    path, sha256 = adapters_file(run)
    if not path:
        return "none (adapters as initialised: untrained)" if "weights" in run else NOT_RECORDED
    return file_entry(path, sha256)


def _calibration(run: Mapping) -> str:
    if "calibration" not in run:
        return NOT_RECORDED
    calibration = run["calibration"]
    if not calibration:
        return "none (raw scores)"
    classes = sorted((calibration.get("classes") or {}) if isinstance(calibration, Mapping) else [])
    return "normal-reference calibration of " + (", ".join(classes) if classes else "no class")


def _versions(versions: object) -> str:
    if not isinstance(versions, Mapping) or not versions:
        return NOT_RECORDED
    return ", ".join(f"{name} {version or '-'}" for name, version in versions.items())


def _text(value: object) -> str:
    return NOT_RECORDED if value in (None, "") else str(value)


def provenance_rows(report: Mapping) -> list[tuple[str, str]]:
    """(label, value) rows for the top of the report, in reading order."""
    run = report.get("run") or {}
    size = run.get("image_size")
    protocol = str(report.get("protocol", ""))
    inference_versions = run.get("package_versions") or (
        {"aaclip-med": run["aaclip_med_version"]} if run.get("aaclip_med_version") else None)
    return [
        ("Protocol", _PROTOCOLS.get(protocol, _text(protocol))),
        ("Dataset", _text(report.get("dataset"))),
        ("Backbone", _text(run.get("backbone")) + (f" at {size} x {size} px" if size else "")),
        ("CLIP weights", _clip_weights(run)),
        ("Adapters", _adapters(run)),
        ("Precision", _text(run.get("precision"))),
        ("Domain", _text(run.get("domain"))),
        ("Modality preset", _text(run.get("modality")) + " (run default; per case in the score table)"),
        ("Calibration", _calibration(run)),
        ("AUPRO FPR limit", _text(report.get("fpr_limit"))),
        ("Inference run", _text(run.get("created"))),
        ("Evaluated", _text(report.get("created_utc"))),
        ("Package versions at inference", _versions(inference_versions)),
        ("Package versions at evaluation", _versions(report.get("package_versions"))),
    ]
