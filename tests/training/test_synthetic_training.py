"""Normal-only training with synthetic anomalies: hold-out split, validation, resume, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from aaclip_med.cli import main
from aaclip_med.keys import Keys
from aaclip_med.training import run_training
from aaclip_med.training.config import SyntheticConfig, TrainConfig
from aaclip_med.training.data import manifest_training_data
from aaclip_med.training.synthetic import SyntheticValidation, split_holdout
from tests.conftest import make_tiny_model
from tests.training._runs import tiny_config


def _normal_manifest(root, count: int = 6) -> str:
    rng = np.random.default_rng(0)
    lines = []
    for index in range(count):
        Image.fromarray((rng.random((40, 40, 3)) * 120 + 60).astype(np.uint8)).save(root / f"img{index}.png")
        lines.append(json.dumps({"image_path": f"img{index}.png", "label": 0.0, "class_name": "widget", "mask_path": ""}))
    (root / "normal.jsonl").write_text("\n".join(lines) + "\n")
    return str(root / "normal.jsonl")


def test_holdout_takes_whole_normal_cases_and_never_real_anomalies():
    records = [{"image_path": f"vol{v}.nii.gz", "slice_index": k, "label": 0.0, "class_name": "ct"}
               for v in range(5) for k in range(3)]
    records.append({"image_path": "sick.nii.gz", "slice_index": 0, "label": 1.0, "class_name": "ct"})
    train, held = split_holdout(records, 0.4, seed=3)
    held_cases = {r["image_path"] for r in held}
    assert len(held_cases) == 2 and len(held) == 6  # 40 % of 5 volumes, every slice of each
    assert not held_cases & {r["image_path"] for r in train}
    assert any(r["label"] == 1.0 for r in train) and all(r["label"] == 0.0 for r in held)
    assert split_holdout(records, 0.4, seed=3) == (train, held)  # seeded
    assert split_holdout(records, 0.0, seed=3) == (records, [])


def test_validation_set_is_fixed_half_anomalous_with_its_own_kind(tmp_path):
    _normal_manifest(tmp_path, count=4)
    records = [json.loads(line) for line in (tmp_path / "normal.jsonl").read_text().splitlines()]
    settings = SyntheticConfig(kinds=("perlin", "cutpaste")).resolved(seed=0)
    assert settings.validation_kind == "lesion" and settings.validation_seed != 0
    sets = [SyntheticValidation(records, tmp_path, 112, "photo", settings) for _ in range(2)]
    assert len(sets[0]) == 8  # each record clean and planted
    samples = [[s[i] for i in range(8)] for s in sets]
    assert [float(x[Keys.LABEL]) for x in samples[0]] == [0.0, 1.0] * 4
    assert samples[0][1][Keys.MASK].any() and not samples[0][0][Keys.MASK].any()
    assert samples[0][0][Keys.IMAGE].shape == (3, 112, 112)
    for a, b in zip(*samples):
        torch.testing.assert_close(a[Keys.IMAGE], b[Keys.IMAGE], rtol=0, atol=0)
    with pytest.raises(IndexError, match="out of range"):
        sets[0][8]


def test_validation_pairs_each_planted_sample_with_its_own_clean_image(tmp_path):
    # issue 34: with every second record planted, the few held-out images put a content difference
    # between the anomalous and the normal group; a score that follows the content scored far from 0.5
    _normal_manifest(tmp_path, count=6)
    records = [json.loads(line) for line in (tmp_path / "normal.jsonl").read_text().splitlines()]
    settings = SyntheticConfig(kinds=("cutpaste",), validation_kind="cutpaste").resolved(seed=0)
    val = SyntheticValidation(records, tmp_path, 112, "photo", settings)
    for record in range(6):
        clean, planted = val[2 * record], val[2 * record + 1]
        mask = planted[Keys.MASK][0] > 0.5
        assert float(clean[Keys.LABEL]) == 0.0 and float(planted[Keys.LABEL]) == 1.0 and mask.any()
        changed = (clean[Keys.IMAGE] != planted[Keys.IMAGE]).any(dim=0)
        near = torch.nn.functional.max_pool2d(mask[None, None].float(), 17, 1, 8)[0, 0] > 0  # bicubic rings (40 -> 112 px)
        assert changed[mask].float().mean() > 0.5 and not (changed & ~near).any()


def _graded_manifest(root, count: int) -> list[dict]:
    """Images of ``count`` grey levels 30 apart (45, 75, ...), each with a little noise."""
    rng = np.random.default_rng(1)
    records = []
    for index in range(count):
        level = 45 + 30 * index
        Image.fromarray((level + rng.integers(-3, 4, (40, 40, 3))).astype(np.uint8)).save(root / f"grey{index}.png")
        records.append({"image_path": f"grey{index}.png", "label": 0.0, "class_name": "widget", "mask_path": ""})
    return records


def test_validation_image_auroc_of_a_content_only_score_is_chance(tmp_path):
    # a score that knows which image it sees (its grey level) but not the anomaly must score 0.5;
    # with every second image planted it scored 0.33 here (the planted images were the darker ones)
    from sklearn.metrics import roc_auc_score

    from aaclip_med.data.channels import CLIP_MEAN, CLIP_STD

    records = _graded_manifest(tmp_path, 6)
    settings = SyntheticConfig(kinds=("cutpaste",), validation_kind="cutpaste").resolved(seed=0)
    val = SyntheticValidation(records, tmp_path, 112, "photo", settings)
    samples = [val[i] for i in range(len(val))]
    grey = [float((s[Keys.IMAGE][0].median() * CLIP_STD[0] + CLIP_MEAN[0]) * 255) for s in samples]
    scores = [int(g // 30) for g in grey]  # the image's grey level, unchanged by the pasted patch
    labels = [float(s[Keys.LABEL]) for s in samples]
    assert sorted(set(scores)) == [1, 2, 3, 4, 5, 6] and sum(labels) == 6
    assert roc_auc_score(labels, scores) == 0.5


class _Recording:
    """Wraps a training transform and records a hash of each sample it produces."""

    def __init__(self, inner, log: list) -> None:
        self.inner, self.log = inner, log

    def set_random_state(self, seed=None, state=None):
        self.inner.set_random_state(seed=seed)
        return self

    def __call__(self, data):
        out = self.inner(data)
        digest = hashlib.sha256(np.asarray(out[Keys.IMAGE]).tobytes() + np.asarray(out[Keys.MASK]).tobytes())
        self.log.append((digest.hexdigest()[:16], float(out[Keys.LABEL])))
        return out


def _run(manifest, root, out, log: list, **overrides) -> bool:
    synthetic = SyntheticConfig(kinds=("perlin", "cutpaste"), holdout=0.0)
    train, transform, val = manifest_training_data(manifest, root, 112, modality="photo", synthetic=synthetic)
    config: TrainConfig = tiny_config(out, batch1=2, batch2=2, epochs=2, synthetic=synthetic, **overrides)
    result = run_training(make_tiny_model(), config, train, val, lambda stage: _Recording(transform(stage), log))
    return result.completed


def test_resume_reproduces_the_same_synthetic_samples(tmp_path):
    manifest = _normal_manifest(tmp_path, count=4)
    once: list = []
    assert _run(manifest, tmp_path, tmp_path / "once", once)
    interrupted: list = []
    assert not _run(manifest, tmp_path, tmp_path / "resumed", interrupted, stop_after_iterations=3)
    assert _run(manifest, tmp_path, tmp_path / "resumed", interrupted)
    assert interrupted == once and len(once) == 2 * 2 * 4  # 2 stages x 2 epochs x 4 samples
    assert 0 < sum(label for _, label in once) < len(once)  # some samples planted, some left normal
    record = json.loads((tmp_path / "once" / "train_config.json").read_text())["config"]["synthetic"]
    assert record == {"kinds": ["perlin", "cutpaste"], "probability": 0.5, "validation_kind": "lesion",
                      "holdout": 0.0, "validation_seed": 1_000_003}


def test_normal_only_manifest_trains_end_to_end_from_the_cli(tmp_path, capsys):
    manifest = _normal_manifest(tmp_path, count=6)
    argv = ["train", "--manifest", manifest, "--dataset-root", str(tmp_path), "--out", str(tmp_path / "out"),
            "--backbone", "aaclip-tiny", "--backbone-weights", "random", "--descriptions", '{"widget": "plastic widget"}',
            "--epochs-stage1", "1", "--epochs-stage2", "1", "--batch-size-stage1", "2", "--batch-size-stage2", "2",
            "--no-progress", "--no-tensorboard", "--modality", "photo", "--synthetic-holdout", "0.34"]
    assert main([*argv, "--synthetic-anomalies", "perlin,cutpaste"]) == 0
    out = tmp_path / "out"
    assert (out / "adapters.safetensors").is_file() and (out / "stage1" / "best.safetensors").is_file()
    record = json.loads((out / "train_config.json").read_text())
    assert record["config"]["synthetic"]["validation_kind"] == "lesion"
    assert record["data"]["train"]["samples"] == 4 and record["data"]["validation"]["samples"] == 2
    validations = [json.loads(line)["validation"] for line in (out / "log.jsonl").read_text().splitlines()
                   if "validation" in line]
    assert validations and all(v["image_auroc"] is not None for v in validations)  # held-out lesions found
    # a re-run that would plant other anomalies in the same folder is refused, naming the setting
    assert main([*argv, "--synthetic-anomalies", "perlin"]) == 1
    assert "synthetic" in capsys.readouterr().err


def test_bad_synthetic_settings_are_refused():
    with pytest.raises(ValueError, match="probability"):
        dataclasses.replace(SyntheticConfig(), probability=0.0).validate()
    with pytest.raises(ValueError, match="choose from"):
        SyntheticConfig(kinds=("blur",)).validate()
    with pytest.raises(ValueError, match="holdout"):
        SyntheticConfig(holdout=1.0).validate()


def test_cli_validates_on_real_data_when_given_and_refuses_bad_values_before_building(tmp_path, capsys):
    from aaclip_med.cli import _command_parser
    from aaclip_med.commands.train import config_from_args

    base = ["--manifest", "m.jsonl", "--dataset-root", ".", "--out", str(tmp_path / "o"), "--domain", "medical",
            "--synthetic-anomalies", "cutpaste,lesion"]
    config = config_from_args(_command_parser("train").parse_args(base))
    assert config.synthetic.kinds == ("cutpaste", "lesion") and config.synthetic.holdout == 0.1
    assert config.synthetic.resolved(0).validation_kind == "perlin"  # the kind training does not use
    with_val = config_from_args(_command_parser("train").parse_args([*base, "--val-manifest", "v.jsonl"]))
    assert with_val.synthetic.holdout == 0.0  # real labelled data picks the epoch; no normals held out
    manifest = _normal_manifest(tmp_path, count=2)
    code = main(["train", "--manifest", manifest, "--dataset-root", str(tmp_path), "--out", str(tmp_path / "bad"),
                 "--backbone", "aaclip-tiny", "--backbone-weights", "random", "--synthetic-anomalies", "perlin",
                 "--synthetic-probability", "1.5"])
    assert code == 1 and "synthetic probability" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_validation_mixes_the_held_out_kind_with_the_training_kinds(tmp_path):
    # issue 34, cause 5: a foreign kind alone scores nothing the training moves, so epoch 1 was kept
    _normal_manifest(tmp_path, count=4)
    records = [json.loads(line) for line in (tmp_path / "normal.jsonl").read_text().splitlines()]
    settings = SyntheticConfig(kinds=("cutpaste",)).resolved(seed=0)
    val = SyntheticValidation(records, tmp_path, 112, "photo", settings)
    kinds = [val[i].get(Keys.SYNTHETIC) for i in range(8)]
    assert kinds == [None, "lesion", None, "cutpaste", None, "lesion", None, "cutpaste"]
