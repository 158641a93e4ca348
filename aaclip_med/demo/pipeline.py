"""The demo pipeline: sample data -> inference (overlays + predictions) -> evaluation (report and its figures).

Every step calls the library function the CLI and the bundle call (``generate_sample``,
``run_inference``, ``evaluate_predictions``); this module only chooses the settings and the
layout of the output folder::

    OUT/sample/        the generated sample (DICOM series, NIfTI, PNG, masks, manifest.jsonl)
    OUT/overlays/<class>/   <case>_anomaly.nii.gz on the source grid (volumes),
                            <case>_heatmap.png / <case>_blend.png (images), <case>_scores.json, scores
    OUT/predictions/   the predictions directory of the manifest run (read by evaluate)
    OUT/report/        report.html, report.md, report.json, metrics.csv, viewer.html
    OUT/figures/       the report's figures as PNG files (metrics per class, ROC/PR curves of all
                       classes, and per class its curves and example overlays)
    OUT/references/    the reference memory of the sample's normals and zero-shot / memory / combined
                       reports on the held-out records (see references.py)
    OUT/SUMMARY.md     what ran, with which weights, where everything is
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import torch

from aaclip_med.data.manifest import read_manifest
from aaclip_med.files import write_bytes_atomic
from aaclip_med.keys import Keys
from aaclip_med.model import AAClip, AAClipConfig, BackboneWeightsError, build_aaclip, load_adapters
from aaclip_med.model.checkpoint import read_adapter_file

from .references import compare_references
from .sample import generate_sample
from .settings import DEMO_BACKBONE, DEMO_IMAGE_SIZE
from .weights import WeightsChoice, choose_weights

__all__ = ["DemoSettings", "DemoResult", "run_demo", "RANDOM_BANNER"]

logger = logging.getLogger(__name__)

RANDOM_BANNER = (
    "RANDOM WEIGHTS: the CLIP backbone ran with random weights. The pipeline ran end to end, "
    "but every map, score and metric of this run is MEANINGLESS."
)
# subfolders a demo run owns and replaces on a re-run (a fresh run, so no stale outputs of other weights)
_OWNED = ("sample", "overlays", "predictions", "report", "figures", "references")
_MARKER = ".aaclip-med-demo"
UNTRAINED_NOTE = (
    "No trained adapters (--weights): the AA-CLIP adapters and heads are untrained, so maps are not "
    "AA-CLIP's even with pretrained CLIP weights. Train with `aaclip-med train` or pass --weights."
)


@dataclass(frozen=True)
class DemoSettings:
    """Settings of a demo run (defaults: the full sample on ViT-B-16 at 224 px)."""

    size: str = "full"
    seed: int = 0
    backbone: str | None = None  # default DEMO_BACKBONE, or the backbone of --weights
    image_size: int | None = None  # default DEMO_IMAGE_SIZE for DEMO_BACKBONE
    backbone_weights: str | None = None  # file, open_clip tag or "random"; None: see weights.py
    weights: str | None = None  # trained adapters (.safetensors)
    offline: bool = False
    protocol: str = "deployment"
    device: str | None = None
    precision: str = "auto"
    batch_size: int = 8


@dataclass
class DemoResult:
    """Where a demo run put its outputs."""

    out_dir: Path
    manifest: Path
    weights: WeightsChoice
    backbone: str
    image_size: int
    trained_adapters: bool
    overlays: list[Path] = field(default_factory=list)  # NIfTI overlays of the volumes
    blends: list[Path] = field(default_factory=list)  # PNG blends of the images
    scores: list[Path] = field(default_factory=list)
    report_html: Path | None = None
    figures: list[Path] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    references: dict = field(default_factory=dict)  # variant -> report "mean" (zero-shot, memory, combined)
    seconds: dict = field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        return self.weights.random


def _build_model(settings: DemoSettings) -> tuple[AAClip, WeightsChoice]:
    """Build the network, falling back to random weights when a download fails."""
    backbone = settings.backbone
    if settings.weights:
        backbone = backbone or AAClipConfig.from_dict(read_adapter_file(settings.weights)[0]["config"]).backbone
    backbone = backbone or DEMO_BACKBONE
    image_size = settings.image_size or (DEMO_IMAGE_SIZE if backbone == DEMO_BACKBONE else None)
    choice = choose_weights(backbone, settings.backbone_weights, settings.offline)
    logger.info("backbone %s, weights: %s", backbone, choice.reason)
    torch.manual_seed(settings.seed)  # untrained adapters (and random CLIP) are the same on every run
    try:
        if settings.weights:
            return load_adapters(settings.weights, pretrained=choice.pretrained), choice
        return build_aaclip(AAClipConfig(backbone=backbone, image_size=image_size, pretrained=choice.pretrained)), choice
    except BackboneWeightsError as err:
        if choice.source != "download":
            raise
        logger.warning("download failed (%s); falling back to random weights", err)
        choice = WeightsChoice("random", "random-fallback", f"download of {backbone} weights failed")
        return _build_model_random(settings, backbone, image_size), choice


def _build_model_random(settings: DemoSettings, backbone: str, image_size: int | None) -> AAClip:
    torch.manual_seed(settings.seed)
    if settings.weights:
        return load_adapters(settings.weights, pretrained="random")
    return build_aaclip(AAClipConfig(backbone=backbone, image_size=image_size, pretrained="random"))


def _cohorts(manifest: Path) -> list[dict]:
    """One inference job per class: its sources (a series folder, a volume, or an image folder)."""
    jobs: dict[str, dict] = {}
    root = manifest.parent
    for record in read_manifest(manifest):
        name = str(record[Keys.CLASS_NAME])
        path = root / str(record[Keys.IMAGE_PATH])
        source = path if Keys.SLICE_INDEX in record else path.parent  # images: their folder
        job = jobs.setdefault(name, {"class_name": name, "modality": record.get(Keys.MODALITY),
                                     "domain": record.get(Keys.DOMAIN), "inputs": []})
        if source not in job["inputs"]:
            job["inputs"].append(source)
    return list(jobs.values())


def _infer(model: AAClip, settings: DemoSettings, manifest: Path, out: Path, result: DemoResult) -> None:
    from aaclip_med.inference import run_inference

    descriptions = json.loads((manifest.parent / "descriptions.json").read_text())
    common = _common(settings)
    for job in _cohorts(manifest):
        folder = out / "overlays" / job["class_name"]
        summary = run_inference(job["inputs"], folder, model, modality=job["modality"], domain=job["domain"],
                                class_name=job["class_name"], description=descriptions[job["class_name"]], **common)
        _check(summary, folder)
        result.overlays += sorted(folder.glob("*_anomaly.nii.gz"))
        result.blends += sorted(folder.glob("*_blend.png"))
        result.scores += sorted(folder.glob("*_scores.json"))
    summary = run_inference([], out / "predictions", model, manifest=manifest, dataset_root=manifest.parent,
                            descriptions=descriptions, **common)
    _check(summary, out / "predictions")


def _common(settings: DemoSettings) -> dict:
    """The run settings every inference of the demo shares."""
    return {"precision": settings.precision, "batch_size": settings.batch_size, "device": settings.device,
            "weights": settings.weights}


def _check(summary: dict, folder: Path) -> None:
    if summary.get("failed"):
        msg = f"inference into {folder} failed for {summary['failed']}; see the log above"
        raise RuntimeError(msg)


def _prepare_out(out: Path) -> None:
    """Create ``out``, or clear the outputs of an earlier demo run in it.

    Raises:
        FileExistsError: ``out`` holds files that no demo run wrote (nothing is deleted then).
    """
    if out.exists() and any(out.iterdir()) and not (out / _MARKER).is_file():
        msg = f"{out} is not empty and was not written by 'aaclip-med demo'; pass --out with a new or empty folder."
        raise FileExistsError(msg)
    for name in _OWNED:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("written by aaclip-med demo; the next demo run replaces this folder's outputs\n")


def run_demo(out_dir: str | PathLike, settings: DemoSettings | None = None) -> DemoResult:
    """Run the whole demo into ``out_dir`` (created; nothing is written elsewhere).

    Args:
        out_dir: output folder.
        settings: see :class:`DemoSettings`.

    Returns:
        The :class:`DemoResult` with every output path, the weights used and step timings.
    """
    from aaclip_med.evaluation.evaluate import evaluate_predictions

    settings = settings or DemoSettings()
    out = Path(out_dir)
    _prepare_out(out)
    clock = time.perf_counter()
    manifest = generate_sample(out / "sample", size=settings.size, seed=settings.seed)
    seconds = {"sample": time.perf_counter() - clock}
    model, choice = _build_model(settings)
    if choice.random:
        logger.warning("!!! %s !!!", RANDOM_BANNER)
    result = DemoResult(out, manifest, choice, model.config.backbone, model.config.image_size, bool(settings.weights))
    seconds["model"] = time.perf_counter() - clock - sum(seconds.values())
    _infer(model, settings, manifest, out, result)
    seconds["inference"] = time.perf_counter() - clock - sum(seconds.values())
    result.references = compare_references(model, manifest, json.loads((manifest.parent / "descriptions.json").read_text()),
                                           out / "references", _common(settings), settings.protocol)
    seconds["references"] = time.perf_counter() - clock - sum(seconds.values())
    result.report = evaluate_predictions(manifest, manifest.parent, out / "predictions", out / "report",
                                         protocol=settings.protocol, figures_dir=out / "figures")
    result.report_html = out / "report" / "report.html"
    result.figures = sorted((out / "figures").glob("*.png"))
    seconds["evaluation"] = time.perf_counter() - clock - sum(seconds.values())
    result.seconds = {k: round(v, 1) for k, v in seconds.items()} | {"total": round(time.perf_counter() - clock, 1)}
    write_bytes_atomic(out / "SUMMARY.md", summary_markdown(result).encode())
    return result


def summary_markdown(result: DemoResult) -> str:
    """SUMMARY.md of a demo run; a random-weights run says so in its first line."""
    lines = [f"> **{RANDOM_BANNER}**", ""] if result.random_weights else []
    if not result.trained_adapters:
        lines += [f"> {UNTRAINED_NOTE}", ""]
    mean = result.report.get("mean", {})
    rel = lambda p: str(Path(p).relative_to(result.out_dir))  # noqa: E731 - local shorthand
    lines += [
        "# aaclip-med demo run", "",
        f"- backbone: {result.backbone} at {result.image_size} px; CLIP weights: {result.weights.reason}",
        f"- sample: {rel(result.manifest)} ({len(read_manifest(result.manifest))} slices/images)",
        f"- report: {rel(result.report_html)}",
        f"- mean pixel AUROC {mean.get('pixel_auroc')}, image AUROC {mean.get('image_auroc')}",
        f"- seconds per step: {result.seconds}", "",
        *_references_lines(result),
        "## NIfTI overlays (open on top of the source in 3D Slicer, ITK-SNAP, NiiVue)",
        *[f"- {rel(p)}" for p in result.overlays], "",
        "## PNG blends", *[f"- {rel(p)}" for p in result.blends], "",
        "## Figures", *[f"- {rel(p)}" for p in result.figures], "",
    ]
    return "\n".join(lines)


def _references_lines(result: DemoResult) -> list[str]:
    """SUMMARY.md's side-by-side table of the reference memory step (empty when it did not run)."""
    if not result.references:
        return []
    lines = ["## Reference memory (references/: the sample's normals, evaluated on held-out records)", "",
             "| | pixel AUROC | image AUROC |", "|---|---|---|"]
    for name, mean in result.references.items():
        lines.append(f"| {name} | {_fmt(mean.get('pixel_auroc'))} | {_fmt(mean.get('image_auroc'))} |")
    note = ("Random weights are not CLIP: the zero-shot numbers mean nothing, while nearest-neighbour distances "
            "between patch features still separate a foreign texture from normal ones. "
            if result.random_weights else "")
    return lines + ["", note + "See docs/reference-memory.md.", ""]


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
