"""A tiny dataset + predictions directory written exactly as docs/dev/interfaces.md describes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image


def pytest_configure(config):
    # masks and images are read through MONAI, which probes for an optional GPU DICOM decoder
    config.addinivalue_line("filterwarnings", "ignore:.*nvImageCodec.*:UserWarning")


def _bilinear(model_map, size):
    """The native-size map from the S x S one, as inference resizes it."""
    tensor = torch.from_numpy(model_map)[None, None]
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def write_predictions(root, classes, random_weights=False, size=(20, 24), seed=0, model_size=28):
    """Write dataset_root/, manifest.jsonl and preds/ for ``classes`` = {name: (n_normal, n_anomalous, domain)}.

    Each line has an S x S model map (``model_maps/``, S = ``model_size``) and its bilinear resize to
    the image's size (``maps/``), as ``aaclip-med infer --manifest`` writes them.
    """
    rng = np.random.default_rng(seed)
    data, preds = root / "data", root / "preds"
    (preds / "maps").mkdir(parents=True)
    (preds / "model_maps").mkdir()
    manifest, lines, index = [], [], 0
    for name, (n_normal, n_anomalous, domain) in classes.items():
        (data / name).mkdir(parents=True)
        for k in range(n_normal + n_anomalous):
            label = float(k >= n_normal)
            image_path = f"{name}/{k:03d}.png"
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(data / image_path)
            model_map = rng.random((model_size, model_size)).astype(np.float32)
            entry = {"image_path": image_path, "label": label, "class_name": name, "mask_path": ""}
            if label:
                mask = np.zeros(size, np.uint8)
                y, x = rng.integers(0, size[0] - 6), rng.integers(0, size[1] - 6)
                mask[y : y + 5, x : x + 6] = 255
                mask[0:2, 0:3] = 255  # a second region
                entry["mask_path"] = f"{name}/{k:03d}_mask.png"
                Image.fromarray(mask).save(data / entry["mask_path"])
                small = np.asarray(Image.fromarray(mask).resize((model_size, model_size), Image.NEAREST))
                model_map[small > 0] += 0.6
            score_map = _bilinear(model_map, size)
            map_path, model_map_path = f"maps/{index:06d}.npy", f"model_maps/{index:06d}.npy"
            np.save(preds / map_path, score_map)
            np.save(preds / model_map_path, model_map)
            global_score = float(rng.random() + 0.3 * label)
            image_score = (
                float(model_map.max())
                if domain == "medical"
                else 0.5 * float(model_map.max()) + 0.5 * global_score
            )
            lines.append(
                {
                    "index": index,
                    "image_path": image_path,
                    "mask_path": entry["mask_path"],
                    "class_name": name,
                    "label": label,
                    "image_score": image_score,
                    "global_score": global_score,
                    "map_max": float(model_map.max()),
                    "map_path": map_path,
                    "model_map_path": model_map_path,
                    "domain": domain,
                }
            )
            manifest.append(entry)
            index += 1
    (root / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    (preds / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in lines))
    run = {
        "backbone": "ViT-L-14-336",
        "pretrained": "random" if random_weights else "openai",
        "weights_sha256": "ab" * 32,
        "adapters": {"file": "adapters.safetensors", "sha256": "cd" * 32},
    }
    (preds / "run.json").write_text(json.dumps(run))
    return root / "manifest.jsonl", data, preds


@pytest.fixture
def predictions_factory(tmp_path):
    def make(classes, **kwargs):
        return write_predictions(tmp_path, classes, **kwargs)

    return make


# classes of the sample kept for the report tests: a DICOM CT series, a NIfTI MR volume, fundus
# photos (medical images) and brick tiles (industrial images)
REPORT_CLASSES = ("ct", "mri", "retina", "brick")


@pytest.fixture(scope="session")
def sample_report(tmp_path_factory):
    """The small sample run through the tiny random-weight model, evaluated: (report dir, manifest, predictions dir).

    Shared by the report and browser tests; they must not modify it.
    """
    from aaclip_med.demo import generate_sample
    from aaclip_med.evaluation.evaluate import evaluate_predictions
    from aaclip_med.inference import run_inference
    from tests.conftest import make_tiny_model

    root = tmp_path_factory.mktemp("sample_report")
    full = generate_sample(root / "sample", size="small", seed=0)
    lines = [json.loads(x) for x in full.read_text().splitlines() if x.strip()]
    manifest = full.with_name("report_manifest.jsonl")
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines if x["class_name"] in REPORT_CLASSES))
    descriptions = json.loads((full.parent / "descriptions.json").read_text())
    model = make_tiny_model().eval()
    run_inference([], root / "pred", model, modality="ct", manifest=manifest, dataset_root=manifest.parent,
                  descriptions=descriptions, device="cpu", weights=None)
    evaluate_predictions(manifest, manifest.parent, root / "pred", root / "report", examples_per_group=2)
    return root / "report", manifest, root / "pred"
