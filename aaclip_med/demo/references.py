"""The demo's reference-memory step: zero-shot vs memory vs combined on the same held-out records.

The sample's normal records are the references, except every third normal record of a class
(when it has three or more), which is held out and evaluated with the anomalous records: a
reference scored against a memory holding itself reads about 0, which would flatter the memory.
Classes left with fewer than two reference slices are not compared (named in the log). The three
variants (zero-shot, ``reference_weight`` 1.0 = memory alone, 0.5 = combined) are computed from
one forward per held-out slice (:func:`compare_references`), into ``OUT/references/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from aaclip_med.data.manifest import read_manifest, write_manifest
from aaclip_med.files import write_json_atomic
from aaclip_med.keys import Keys

__all__ = ["compare_references", "VARIANTS"]

logger = logging.getLogger(__name__)

# name -> reference weight (None: zero-shot, no memory)
VARIANTS = {"zero-shot": None, "memory": 1.0, "combined": 0.5}


def _split(records: list[dict]) -> tuple[dict[str, list[dict]], list[dict]]:
    """(class -> reference records, evaluation records) of the classes with >= 2 reference records."""
    by_class: dict[str, list[dict]] = {}
    for record in records:
        by_class.setdefault(str(record[Keys.CLASS_NAME]), []).append(record)
    references, evaluation = {}, []
    for name, rows in by_class.items():
        normals = [r for r in rows if float(r[Keys.LABEL]) == 0.0]
        held = normals[2::3] if len(normals) >= 3 else []
        kept = [r for r in normals if r not in held]
        if len(kept) < 2:
            logger.info("demo references: class %s has %d normal record(s) to spare; not compared", name, len(kept))
            continue
        references[name] = kept
        evaluation += held + [r for r in rows if float(r[Keys.LABEL]) != 0.0]
    return references, evaluation


def compare_references(model, manifest: Path, descriptions: dict, out: Path, common: dict, protocol: str) -> dict:
    """Build a memory from the sample's normals and score the held-out records three ways; name -> means.

    Each held-out slice is encoded once and its zero-shot, memory and combined maps all come from
    those features, so the step costs one forward per reference and per held-out slice. Metrics
    are exact (pixel AUROC over all pixels of a class, image AUROC over its slices), on the maps
    at the source's size (the deployment protocol), averaged over the compared classes.

    Args:
        model: the demo's network.
        manifest: the sample manifest (paths relative to its folder).
        descriptions: class name -> description.
        out: the folder of this step (created): refs.safetensors, evaluation.jsonl, comparison.json.
        common: precision, batch_size, device, weights of the demo's runs.
        protocol: the demo's evaluation protocol (recorded; this comparison is on raw maps).
    """
    from aaclip_med.adaptation import ReferenceScorer, build_references, save_references
    from aaclip_med.adaptation.sources import manifest_references
    from aaclip_med.identity import memory_identity
    from aaclip_med.inference import Predictor
    from aaclip_med.inference.run_info import run_record

    root = manifest.parent
    references, evaluation = _split(read_manifest(manifest))
    if not references:
        return {}
    predictor = Predictor(model, batch_size=common["batch_size"], precision=common["precision"], device=common["device"])
    identity = memory_identity(run_record(model, common["weights"], {}), "acquisition")
    classes = {name: (descriptions[name], manifest_references(rows, root, "auto")) for name, rows in references.items()}
    bank = build_references(predictor, classes, 256.0, identity)
    save_references(bank, out / "refs.safetensors")
    write_manifest(evaluation, out / "evaluation.jsonl")
    scorers = {name: {variant: None if weight is None else ReferenceScorer(memory, weight, predictor.device,
                                                                           predictor.precision)
                      for variant, weight in VARIANTS.items()}
               for name, memory in bank.classes.items()}
    per_class = {name: _score_class(predictor, scorers[name], [r for r in evaluation if r[Keys.CLASS_NAME] == name],
                                    root, descriptions[name]) for name in bank.classes}
    means = {variant: {metric: _mean([per_class[c][variant][metric] for c in per_class])
                       for metric in ("pixel_auroc", "image_auroc")} for variant in VARIANTS}
    write_json_atomic(out / "comparison.json", {"variants": {k: v for k, v in VARIANTS.items()}, "protocol": "deployment",
                                                "demo_protocol": protocol, "classes": per_class, "mean": means})
    return means


def _mean(values: list) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _score_class(predictor, scorers: dict, records: list[dict], root: Path, description: str) -> dict:
    """variant -> {pixel_auroc, image_auroc} of one class's held-out records."""
    from aaclip_med.data.masks import read_mask
    from aaclip_med.evaluation.accumulator import ImageAccumulator, PixelAccumulator
    from aaclip_med.inference.predictions_dir import _GroupLoader, group_records
    from aaclip_med.inference.predictor import resize_map

    pixels = {v: PixelAccumulator(track_regions=False) for v in scorers}
    images = {v: ImageAccumulator() for v in scorers}
    loader = _GroupLoader(root, records, "auto")
    for group in group_records(records):
        slices, names, _ = loader(group)
        for index, image, preset in zip(group[1], slices, names, strict=True):
            record = records[index]
            domain = predictor.domain_for(preset)
            feats, zero_shot = predictor.encode(predictor.preprocess(image, preset)[None], description, domain)
            mask_path = record.get(Keys.MASK_PATH)
            mask = (read_mask(root / mask_path, record.get(Keys.SLICE_INDEX))[0].numpy() != 0 if mask_path
                    else np.zeros(image.shape[-2:], bool))
            for variant, scorer in scorers.items():
                pred = zero_shot if scorer is None else scorer.combine(zero_shot, feats.levels,
                                                                      tuple(predictor.model.grid_size), domain)
                pixels[variant].update(resize_map(pred.anomaly_map[0], image.shape[-2:]), mask, source=record[Keys.IMAGE_PATH])
                images[variant].update(float(pred.image_score[0]), float(record[Keys.LABEL]))
    return {v: {"pixel_auroc": _auroc(pixels[v]), "image_auroc": _auroc(images[v])} for v in scorers}


def _auroc(accumulator) -> float | None:
    metrics, _reason = accumulator.compute()
    return None if metrics is None else float(metrics.auroc)
