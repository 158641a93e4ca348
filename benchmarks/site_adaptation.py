"""Site adaptation on the bundled sample: zero-shot vs reference memory vs synthetic training vs both.

The test set is the medical part of the bundled sample (`aaclip-med sample`): CT slices (a DICOM
series), MR slices (a NIfTI volume) and fundus photos, whose anomalies are lesions. The synthetic
variant trains on normal images only (the label-0 slices and photos of a sample generated with
another seed), with generators the test never uses (default perlin + cutpaste), so the table
measures detection of anomalies of a kind the run did not train on. Nothing is held out for
selection (the last epoch is kept): the only held-out generator is the test's. The reference
memory (:mod:`aaclip_med.adaptation`) is built from those same normal images, one memory per
class; ``references`` combines it with the untrained network's zero-shot map (``--reference-weight``),
``memory`` is the memory alone (weight 1), ``both`` combines it with the synthetic-trained network
(the memory built with that network's features).

Each variant is one function ``(context) -> predict``, where ``predict(images, class_names)``
returns anomaly maps (B, S, S) and image scores (B,); :data:`VARIANTS` lists them.

Weights: random unless ``--backbone-weights`` names a CLIP file. Random weights are not CLIP; the
figures only show what the method does with features that carry no learned meaning. Pixel AUROC is
measured at the network's input resolution (S x S).

    python benchmarks/site_adaptation.py                                   # aaclip-tiny (112 px), random
    python benchmarks/site_adaptation.py --backbone ViT-B-16 --image-size 224
    python benchmarks/site_adaptation.py --train-kinds perlin,cutpaste,lesion   # lesions seen in training
    python benchmarks/site_adaptation.py --suite bricks                    # normal-only training vs zero-shot

``--suite bricks`` measures normal-only training against the untrained network on synthetic test
anomalies: 40 normal 128-pixel crops of scikit-image's brick texture train both stages (the
normal-only defaults, :func:`aaclip_med.training.config.default_stage_config` with
``normal_only=True``, 5 and 20 epochs, unless ``--epochs`` or a rate is given) with ``--train-kinds``; 20 crops of another part of
the texture are the test images, each scored clean and planted with one kind per test set (the
package's synthetic validation set): the training kinds (its own generators, other seeds, unseen
crops) and ``lesion`` (a foreign one). Industrial scoring (the image score uses the trained image
head).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _common import emit, host_info, print_table

from aaclip_med.data.dataset import ManifestDataset
from aaclip_med.data.dispatch import ModalityDispatch
from aaclip_med.data.manifest import read_manifest, write_manifest
from aaclip_med.data.pipeline import inference_transforms
from aaclip_med.demo.sample import DESCRIPTIONS, generate_sample
from aaclip_med.evaluation import pixel_and_image_auroc
from aaclip_med.keys import Keys
from aaclip_med.model import AAClip, AAClipConfig, build_aaclip
from aaclip_med.training import StageConfig, SyntheticConfig, TrainConfig, run_training
from aaclip_med.training.batches import collate_samples
from aaclip_med.training.data import manifest_training_data
from aaclip_med.training.objectives import fixed_anchor_table, stack_anchors

MEDICAL = ("ct", "mri", "retina")  # the sample's classes whose anomalies are lesions
Predict = Callable[[torch.Tensor, list[str]], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Context:
    """What every variant gets: the settings, the sample folders and a fresh network builder."""

    args: argparse.Namespace
    work: Path
    test_root: Path  # the sample the table is measured on
    train_root: Path  # a sample of another seed; only its normal records are used
    train_manifest: Path  # those normal records
    trained: AAClip | None = None  # the synthetic-trained network, trained once for both variants using it

    def network(self) -> AAClip:
        """The same network for every variant: same CLIP (random or file) and same adapter init."""
        torch.manual_seed(self.args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the "random weights" warning, stated in the output
            config = AAClipConfig(backbone=self.args.backbone, pretrained=self.args.backbone_weights,
                                  image_size=self.args.image_size)
            return build_aaclip(config).eval()


def _model_predict(model: AAClip) -> Predict:
    table = fixed_anchor_table(model, list(DESCRIPTIONS.values()))

    @torch.no_grad()
    def predict(images: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        pred = model.predict(images, stack_anchors(table, [DESCRIPTIONS[n] for n in names]), "medical")
        return pred.anomaly_map, pred.image_score

    return predict


def variant_zero_shot(ctx: Context) -> Predict:
    """The network as built: adapters untrained (no trained adapters ship with the package)."""
    return _model_predict(ctx.network())


def _synthetic_network(ctx: Context) -> AAClip:
    """Both stages trained on the normal records with synthetic anomalies of ``--train-kinds`` (once per run)."""
    if ctx.trained is not None:
        return ctx.trained
    args = ctx.args
    model = ctx.network()
    synthetic = SyntheticConfig(kinds=tuple(args.train_kinds.split(",")), probability=args.probability, holdout=0.0)
    train, transform, _ = manifest_training_data(ctx.train_manifest, ctx.train_root, model.config.image_size,
                                                 modality="auto", seed=args.seed, synthetic=synthetic)
    config = TrainConfig(
        out_dir=str(ctx.work / "synthetic"), seed=args.seed, domain="medical", descriptions=dict(DESCRIPTIONS),
        stage1=StageConfig(epochs=args.epochs, lr=args.lr_stage1 or 1e-4, batch_size=4),
        stage2=StageConfig(epochs=args.epochs, lr=args.lr_stage2 or 5e-4, batch_size=2, milestones=()),
        synthetic=synthetic, device="cpu", precision="fp32", progress=False, tensorboard=False, save_every=10_000,
    )
    run_training(model, config, train, None, transform)
    ctx.trained = model.eval()
    return model


def variant_synthetic(ctx: Context) -> Predict:
    """The network trained on the normal records with synthetic anomalies (no memory)."""
    return _model_predict(_synthetic_network(ctx))


def _memory_predict(ctx: Context, model: AAClip, weight: float) -> Predict:
    """A reference memory of the normal training records (one per class) built with ``model``, combined
    with its zero-shot map by the package's rule (:class:`aaclip_med.adaptation.ReferenceScorer`)."""
    from aaclip_med.adaptation import ReferenceScorer, build_references
    from aaclip_med.adaptation.sources import manifest_references
    from aaclip_med.inference import Predictor

    predictor = Predictor(model, batch_size=8, precision="fp32", device="cpu")
    records = read_manifest(ctx.train_manifest)
    classes = {name: (DESCRIPTIONS[name], manifest_references([r for r in records if r[Keys.CLASS_NAME] == name],
                                                              ctx.train_root, "auto"))
               for name in MEDICAL if any(r[Keys.CLASS_NAME] == name for r in records)}
    bank = build_references(predictor, classes, ctx.args.max_mb, identity={}, seed=ctx.args.seed)
    scorers = {name: ReferenceScorer(memory, weight, predictor.device, predictor.precision)
               for name, memory in bank.classes.items()}
    grid = tuple(model.grid_size)

    def predict(images: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        maps, scores = [], []
        for image, name in zip(images, names, strict=True):
            memory = scorers[name].memory
            feats, zero_shot = predictor.encode(image[None], memory.description, memory.domain)
            pred = scorers[name].combine(zero_shot, feats.levels, grid, memory.domain)
            maps.append(pred.anomaly_map[0])
            scores.append(pred.image_score[0])
        return torch.stack(maps), torch.stack(scores)

    return predict


def variant_references(ctx: Context) -> Predict:
    """The untrained network's zero-shot map combined with a memory of the normal records (``--reference-weight``)."""
    return _memory_predict(ctx, ctx.network(), ctx.args.reference_weight)


def variant_memory(ctx: Context) -> Predict:
    """The reference memory alone (weight 1): nearest-neighbour distances to the normal patches."""
    return _memory_predict(ctx, ctx.network(), 1.0)


def variant_both(ctx: Context) -> Predict:
    """The synthetic-trained network, its zero-shot map combined with a memory built with its features."""
    return _memory_predict(ctx, _synthetic_network(ctx), ctx.args.reference_weight)


VARIANTS: dict[str, Callable[[Context], Predict]] = {
    "zero-shot": variant_zero_shot,
    "references": variant_references,
    "memory": variant_memory,
    "synthetic": variant_synthetic,
    "both": variant_both,
}


def _test_data(ctx: Context, image_size: int) -> ManifestDataset:
    records = [r for r in read_manifest(ctx.test_root / "manifest.jsonl") if r[Keys.CLASS_NAME] in MEDICAL]
    prepare = ModalityDispatch(lambda name: inference_transforms(name, image_size, mask_key=Keys.MASK), "auto")
    return ManifestDataset(records, ctx.test_root, transform=prepare)


def measure(predict: Predict, data: ManifestDataset) -> dict[str, dict]:
    """Pixel and image AUROC per class and over all test samples."""
    maps, masks, scores, labels, names = [], [], [], [], []
    for start in range(0, len(data), 8):
        batch = collate_samples([data[i] for i in range(start, min(start + 8, len(data)))])
        amap, score = predict(batch[Keys.IMAGE], batch[Keys.CLASS_NAME])
        maps += list(amap.float())
        scores += score.float().tolist()
        masks += list(batch[Keys.MASK][:, 0])
        labels += batch[Keys.LABEL].tolist()
        names += batch[Keys.CLASS_NAME]
    out = {}
    for group in (*MEDICAL, "all"):
        keep = [i for i, n in enumerate(names) if group in ("all", n)]
        out[group] = pixel_and_image_auroc(torch.stack([maps[i] for i in keep]).numpy(),
                                           torch.stack([masks[i] for i in keep]).numpy(),
                                           [scores[i] for i in keep], [labels[i] for i in keep])
    return out


BRICK_DESCRIPTION = {"brick": "brick wall surface"}


def _brick_manifests(work: Path, size: int = 128, seed: int = 0) -> dict[str, Path]:
    """40 training and 20 test crops of ``skimage.data.brick()``, from disjoint rows, as PNG + manifests."""
    from skimage import data as skdata

    from aaclip_med.demo.writers import write_png

    brick, rng = skdata.brick(), np.random.default_rng(seed)
    rows = {"train": ((0, 300 - size), 40), "test": ((330, brick.shape[0] - size), 20)}
    manifests = {}
    for split, ((top, bottom), count) in rows.items():
        records = []
        for index in range(count):
            y, x = int(rng.integers(top, bottom + 1)), int(rng.integers(0, brick.shape[1] - size + 1))
            path = f"{split}/{index:03d}.png"
            write_png(work / path, brick[y : y + size, x : x + size])
            records.append({Keys.IMAGE_PATH: path, Keys.LABEL: 0.0, Keys.CLASS_NAME: "brick", Keys.MASK_PATH: "",
                            Keys.MODALITY: "photo", Keys.CASE_ID: f"{split}_{index:03d}"})
        manifests[split] = write_manifest(records, work / f"{split}.jsonl")
    return manifests


def _measure_bricks(model: AAClip, data) -> dict:
    table = fixed_anchor_table(model, list(BRICK_DESCRIPTION.values()))
    maps, masks, scores, labels = [], [], [], []
    with torch.no_grad():
        for start in range(0, len(data), 8):
            batch = collate_samples([data[i] for i in range(start, min(start + 8, len(data)))])
            anchors = stack_anchors(table, [BRICK_DESCRIPTION[n] for n in batch[Keys.CLASS_NAME]])
            pred = model.eval().predict(batch[Keys.IMAGE], anchors, "industrial")
            maps += list(pred.anomaly_map.float())
            scores += pred.image_score.float().tolist()
            masks += list(batch[Keys.MASK][:, 0])
            labels += batch[Keys.LABEL].tolist()
    return pixel_and_image_auroc(torch.stack(maps).numpy(), torch.stack(masks).numpy(), scores, labels)


def bricks_suite(args: argparse.Namespace, work: Path) -> list[dict]:
    """Zero-shot vs normal-only training on brick crops, per test kind (rows of the printed table)."""
    from aaclip_med.training.config import default_stage_config
    from aaclip_med.training.synthetic import SyntheticValidation

    manifests = _brick_manifests(work)
    ctx = Context(args, work, work, work, manifests["train"])
    size = ctx.network().config.image_size
    train_kinds = tuple(args.train_kinds.split(","))
    test_records = read_manifest(manifests["test"])
    tests = {kind: SyntheticValidation(test_records, work, size, "photo",
                                       SyntheticConfig(kinds=(kind,), validation_kind=kind, validation_seed=args.seed + 77))
             for kind in (*train_kinds, "lesion")}
    zero_shot = ctx.network()
    start = time.perf_counter()
    trained = ctx.network()
    synthetic = SyntheticConfig(kinds=train_kinds, probability=args.probability, holdout=0.0)
    train, transform, _ = manifest_training_data(manifests["train"], work, size, modality="photo", seed=args.seed,
                                                 synthetic=synthetic)
    config = TrainConfig(
        out_dir=str(work / "run"), seed=args.seed, domain="industrial", descriptions=dict(BRICK_DESCRIPTION),
        stage1=default_stage_config(1, normal_only=True, **_given(epochs=args.epochs, lr=args.lr_stage1)),
        stage2=default_stage_config(2, normal_only=True, milestones=(),
                                    **_given(epochs=args.epochs, lr=args.lr_stage2)),
        synthetic=synthetic, device="cpu", precision="fp32", progress=False, tensorboard=False, save_every=10_000)
    run_training(trained, config, train, None, transform)
    seconds = time.perf_counter() - start
    rows = []
    for kind, data in tests.items():
        for name, model in (("zero-shot", zero_shot), ("normal-only", trained)):
            m = _measure_bricks(model, data)
            emit({"suite": "bricks", "variant": name, "test_kind": kind, "own_kind": kind in train_kinds,
                  "train_seconds": round(seconds, 1) if name == "normal-only" else None, "metrics": m})
            rows.append({"variant": name, "test kind": kind + (" (own)" if kind in train_kinds else " (foreign)"),
                         **_rounded_aurocs(m)})
    print(f"backbone {args.backbone}, weights {args.backbone_weights}, 40 normal brick crops, training kinds "
          f"{args.train_kinds}, {config.stage1.epochs} / {config.stage2.epochs} epochs "
          f"(lr {config.stage1.lr:g} / {config.stage2.lr:g}), "
          f"trained in {seconds:.0f} s")
    print_table(rows, ["variant", "test kind", "pixel_auroc", "image_auroc"])
    return rows


def _given(**values) -> dict:
    """The options the command line set (None: the package's default)."""
    return {key: value for key, value in values.items() if value is not None}


def _rounded_aurocs(metrics: dict) -> dict:
    """The table's AUROC columns of one result (None where a test set cannot give one)."""
    return {key: None if metrics[key] is None else round(metrics[key], 3) for key in ("pixel_auroc", "image_auroc")}


def _arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="aaclip-tiny")
    parser.add_argument("--backbone-weights", default="random", help="a CLIP weights file, or random")
    parser.add_argument("--image-size", type=int, default=None, help="network input side; unset: the backbone's")
    parser.add_argument("--train-kinds", default="perlin,cutpaste", help="synthetic kinds the training uses")
    parser.add_argument("--probability", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of each stage; unset: 4 (sample suite), the package's (bricks suite: 5 and 20)")
    parser.add_argument("--lr-stage1", type=float, default=None,
                        help="Stage-1 rate; unset: 1e-4 (sample suite), the normal-only default (bricks suite)")
    parser.add_argument("--lr-stage2", type=float, default=None,
                        help="Stage-2 rate; unset: 5e-4 (sample suite), the normal-only default (bricks suite)")
    parser.add_argument("--reference-weight", type=float, default=0.5,
                        help="w of the memory in the references and both variants (1 = memory alone)")
    parser.add_argument("--max-mb", type=float, default=256.0, help="bound of each reference memory (all classes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--suite", choices=("sample", "bricks"), default="sample",
                        help="sample: the methods on the bundled sample's lesions; bricks: normal-only training "
                        "vs zero-shot on synthetic test anomalies of its own and a foreign kind")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    if args.epochs is None and args.suite == "sample":
        args.epochs = 4
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    emit({"host": host_info(torch.device("cpu"))})
    if args.suite == "bricks":
        with tempfile.TemporaryDirectory() as tmp:
            bricks_suite(args, Path(tmp))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate_sample(work / "test", "full", seed=0)
        generate_sample(work / "train", "full", seed=1)
        normals = [r for r in read_manifest(work / "train" / "manifest.jsonl")
                   if r[Keys.CLASS_NAME] in MEDICAL and float(r[Keys.LABEL]) == 0.0]
        manifest = write_manifest(normals, work / "train" / "normal.jsonl")
        ctx = Context(args, work, work / "test", work / "train", manifest)
        rows = []
        for name in args.variants:
            start = time.perf_counter()
            predict = VARIANTS[name](ctx)
            data = _test_data(ctx, ctx.network().config.image_size)
            result = measure(predict, data)
            seconds = time.perf_counter() - start
            emit({"variant": name, "seconds": round(seconds, 1), "train_normals": len(normals),
                  "test_samples": len(data), "test_anomalous": int(sum(float(r[Keys.LABEL]) for r in data.data)),
                  "train_kinds": args.train_kinds if name in ("synthetic", "both") else None,
                  "reference_weight": {"references": args.reference_weight, "memory": 1.0,
                                       "both": args.reference_weight}.get(name),
                  "metrics": result})
            for group, m in result.items():
                rows.append({"variant": name, "class": group, **_rounded_aurocs(m)})
    print(f"backbone {args.backbone}, weights {args.backbone_weights} (random weights are not CLIP), "
          f"training kinds {args.train_kinds}, reference weight {args.reference_weight}, "
          f"test anomalies: the sample's lesions")
    print_table(rows, ["variant", "class", "pixel_auroc", "image_auroc"])


if __name__ == "__main__":
    main()
