import pytest
import torch

from aaclip_med.adaptation import ReferenceScorer

from .conftest import normal_slice, with_planted_anomaly

BOX = (28, 84)  # rows = cols of the planted square, in pixels


def _features(predictor, images):
    batch = torch.stack([predictor.preprocess(image, "ct") for image in images])
    return predictor.encode(batch, "scan", "medical")


def test_planted_anomaly_scores_above_every_normal_patch(predictor, bank, references):
    """The memory map (levels smoothed and summed as the zero-shot map) of a new normal image with a
    planted foreign texture: its core scores above every pixel of normal tissue, in the same image, in
    a new normal image and in the references."""
    scorer = ReferenceScorer(bank.classes["scan"], 1.0)
    grid = predictor.model.grid_size
    fresh = normal_slice(100)  # a new normal image, not among the references
    images = [fresh, with_planted_anomaly(fresh, BOX * 2), *references[:2]]
    feats, _ = _features(predictor, images)
    maps = scorer.memory_map(feats.levels, grid, "medical", (112, 112))  # (4, H, W)
    low, high = BOX[0] + 7, BOX[1] - 7  # the core: half a patch in from the border
    far = torch.ones(112, 112, dtype=torch.bool)
    far[BOX[0] - 14 : BOX[1] + 14, BOX[0] - 14 : BOX[1] + 14] = False  # a patch away from the border
    core = maps[1, low:high, low:high].min()
    normal = max(maps[0].max(), maps[1][far].max(), maps[2:].max())
    assert core > normal, f"planted core {core:.3f} <= normal tissue {normal:.3f}"


def test_a_reference_image_scores_near_zero(predictor, bank, references):
    scorer = ReferenceScorer(bank.classes["scan"], 1.0)
    feats, _ = _features(predictor, references[:2])
    distances = scorer.distances(feats.levels, predictor.model.grid_size)
    assert distances.abs().max() < 2e-3  # only the float16 rounding of the stored features


def test_combined_map_is_the_documented_rule(predictor, bank):
    memory = bank.classes["scan"]
    stats = memory.stats
    feats, zero_shot = _features(predictor, [with_planted_anomaly(normal_slice(7))])
    grid = predictor.model.grid_size
    for weight in (0.0, 0.3, 1.0):
        scorer = ReferenceScorer(memory, weight)
        out = scorer.combine(zero_shot, feats.levels, grid, "medical")
        raw_memory = scorer.memory_map(feats.levels, grid, "medical", (112, 112))
        # the rule written out: each map as a z-score against the references (stds well above the floor)
        assert stats["zero_shot_std"] > 1e-4 and stats["memory_std"] > 1e-4
        expected = ((1 - weight) * (zero_shot.anomaly_map - stats["zero_shot_mean"]) / stats["zero_shot_std"]
                    + weight * (raw_memory - stats["memory_mean"]) / stats["memory_std"])
        torch.testing.assert_close(out.anomaly_map, expected)
        assert out.image_score.item() == out.map_max.item() == expected.max().item()  # medical: max(map)
        torch.testing.assert_close(out.global_score, zero_shot.global_score)


def test_predictor_with_references_writes_the_combined_map(predictor, bank):
    image = with_planted_anomaly(normal_slice(9))
    plain = predictor.predict_slices([image], "scan")
    try:
        predictor.references = {("scan", "ct"): ReferenceScorer(bank.classes["scan"], 1.0)}
        combined = predictor.predict_slices([image], "scan")
        with pytest.raises(ValueError, match="no reference memory for the class described as 'liver' preprocessed as 'ct'"):
            predictor.predict_slices([image], "liver")
        feats, zero_shot = _features(predictor, [image])
        expected = predictor.references[("scan", "ct")].combine(zero_shot, feats.levels, predictor.model.grid_size, "medical")
    finally:
        predictor.references = None
    assert not torch.allclose(torch.as_tensor(plain.maps[0]), torch.as_tensor(combined.maps[0]))
    torch.testing.assert_close(torch.as_tensor(combined.maps[0]), expected.anomaly_map[0], atol=1e-4, rtol=1e-4)
    assert combined.image_score[0] == combined.map_max[0]

