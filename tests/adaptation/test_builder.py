import logging

import pytest
import torch

from aaclip_med.adaptation import ReferenceSlices, build_references
from aaclip_med.adaptation.builder import PatchStore
from aaclip_med.adaptation.sources import normal_records
from aaclip_med.units import in_mb, mb_to_bytes

from .conftest import model_identity, normal_slice


def test_store_never_holds_more_than_capacity_plus_one_batch():
    store = PatchStore(capacity=300, seed=0)
    peak = 0
    for _ in range(12):
        store.add(torch.nn.functional.normalize(torch.randn(64, 32), dim=1))
        peak = max(peak, store.buffer.shape[0])
        assert store.size <= 300
    assert peak <= 300 + 64 and store.seen == 12 * 64
    final = store.finish()
    assert final.dtype == torch.float16 and 150 <= final.shape[0] <= 300


def test_build_is_bounded_by_max_mb_and_says_what_it_kept(predictor, caplog):
    sources = [ReferenceSlices(f"r{n}", [normal_slice(n)], "ct") for n in range(4)]
    width, levels = predictor.model.embed_dim, len(predictor.model.config.levels)
    max_mb = in_mb(100 * levels * width * 2)  # room for 100 patches per level
    with caplog.at_level(logging.INFO, logger="aaclip_med.adaptation"):
        bank = build_references(predictor, {"scan": ("scan", iter(sources))}, max_mb, model_identity(predictor.model))
    memory = bank.classes["scan"]
    patches = predictor.model.grid_size[0] * predictor.model.grid_size[1]
    assert memory.patches_seen == 4 * patches and memory.patches_kept <= 100
    assert bank.nbytes <= mb_to_bytes(max_mb)
    assert f"kept {memory.patches_kept} of {4 * patches} patches" in caplog.text
    assert all(level.shape == (memory.patches_kept, width) for level in memory.levels)


def test_statistics_are_held_out(bank, predictor, references):
    stats = bank.classes["scan"].stats
    # a reference against a memory holding itself would read ~0; held out it does not
    assert stats["memory_mean"] > 0.01 and stats["memory_std"] > 0
    assert stats["zero_shot_std"] > 0
    # the global-score statistics are those of the references' own zero-shot global scores
    batch = torch.stack([predictor.preprocess(image, "ct") for image in references])
    _, zero_shot = predictor.encode(batch, "scan", "medical")
    scores = zero_shot.global_score.double()
    assert stats["global_mean"] == pytest.approx(scores.mean().item(), rel=1e-5)
    assert stats["global_std"] == pytest.approx(scores.std(correction=0).item(), rel=1e-3, abs=1e-7)


def test_bad_reference_sets_are_refused(predictor):
    identity = model_identity(predictor.model)
    with pytest.raises(ValueError, match="empty set"):
        build_references(predictor, {}, 10.0, identity)
    one = [ReferenceSlices("only.png", [normal_slice(0)], "ct")]
    with pytest.raises(ValueError, match="has 1 reference slice"):
        build_references(predictor, {"scan": ("scan", iter(one))}, 10.0, identity)
    mixed = [ReferenceSlices("a.png", [normal_slice(0)], "ct"), ReferenceSlices("b.png", [normal_slice(1)], "mri")]
    with pytest.raises(ValueError, match="different modality presets"):
        build_references(predictor, {"scan": ("scan", iter(mixed))}, 10.0, identity)


def test_anomalous_manifest_records_are_refused():
    records = [{"image_path": "a.png", "label": 0.0, "class_name": "x"},
               {"image_path": "b.png", "label": 1.0, "class_name": "x"}]
    with pytest.raises(ValueError, match=r"1 anomalous record\(s\) \(label 1\) among the references, first at record 2 \(b.png\)"):
        normal_records(records, "m.jsonl")
