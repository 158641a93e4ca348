"""The demo's reference-memory step: zero-shot vs memory vs combined on the same held-out records.

The sample's normal records are the references, except every third normal record of a class
(when it has three or more), which is held out and evaluated with the anomalous records: a
reference scored against a memory holding itself reads about 0, which would flatter the memory.
Classes left with fewer than two reference slices are not compared (named in the log). The three
runs (zero-shot, ``reference_weight`` 1.0 = memory alone, 0.5 = combined) go through the same
``run_inference`` and ``evaluate_predictions`` as the main demo, into ``OUT/references/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aaclip_med.data.manifest import read_manifest, write_manifest
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
    """Build a memory from the sample's normals and evaluate the three variants; name -> report "mean".

    Args:
        model: the demo's network.
        manifest: the sample manifest (paths relative to its folder).
        descriptions: class name -> description.
        out: the folder of this step (created).
        common: precision, batch_size, device, weights of the demo's runs.
        protocol: the evaluation protocol.
    """
    from aaclip_med.adaptation import build_references, save_references
    from aaclip_med.adaptation.sources import manifest_references
    from aaclip_med.evaluation.evaluate import evaluate_predictions
    from aaclip_med.inference import Predictor, run_inference
    from aaclip_med.inference.calibration import MODEL_FIELDS, identity_from_record
    from aaclip_med.inference.run_info import run_record

    root = manifest.parent
    references, evaluation = _split(read_manifest(manifest))
    if not references:
        return {}
    predictor = Predictor(model, batch_size=common["batch_size"], precision=common["precision"], device=common["device"])
    identity = {k: v for k, v in identity_from_record(run_record(model, common["weights"], {})).items()
                if k in MODEL_FIELDS} | {"slice_axis": "acquisition"}
    classes = {name: (descriptions[name], manifest_references(rows, root, "auto")) for name, rows in references.items()}
    bank = save_references(build_references(predictor, classes, 256.0, identity), out / "refs.safetensors")
    held_out = write_manifest(evaluation, out / "evaluation.jsonl")
    means = {}
    for name, weight in VARIANTS.items():
        extra = {} if weight is None else {"references": str(bank), "reference_weight": weight}
        predictions = out / f"predictions_{name}"
        run_inference([], predictions, model, manifest=held_out, dataset_root=root, descriptions=descriptions,
                      progress=False, **common, **extra)
        report = evaluate_predictions(held_out, root, predictions, out / f"report_{name}", protocol=protocol, pages=False)
        means[name] = report.get("mean", {})
    return means
