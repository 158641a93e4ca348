import pytest
import torch

from aaclip_med.adaptation.coreset import greedy_coreset, select_coreset


def test_one_centre_per_separated_cluster():
    torch.manual_seed(0)
    centres = torch.eye(6, 256) * 10  # 6 clusters far apart, in 256 dimensions (projected to 128)
    points = torch.cat([c + 0.01 * torch.randn(50, 256) for c in centres])  # (300, 256)
    chosen = greedy_coreset(points, 6)
    assert chosen.shape == (6,) and torch.all(chosen[1:] > chosen[:-1])
    assert sorted((chosen // 50).tolist()) == list(range(6))  # every cluster covered, none twice


def test_covering_radius_shrinks_and_size_is_bounded():
    points = torch.randn(2000, 64)
    radii = []
    for k in (10, 100, 500):
        chosen = greedy_coreset(points, k, seed=1)
        assert chosen.shape == (k,) and chosen.unique().numel() == k
        radii.append(torch.cdist(points, points[chosen]).amin(dim=1).max().item())
    assert radii[0] > radii[1] > radii[2]


def test_small_sets_are_kept_whole_and_k_must_be_positive():
    assert greedy_coreset(torch.randn(5, 8), 10).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="k >= 1"):
        greedy_coreset(torch.randn(5, 8), 0)


def test_chunked_selection_keeps_exactly_k_and_covers_every_cluster():
    torch.manual_seed(0)
    centres = torch.eye(8, 64) * 10
    points = torch.cat([c + 0.01 * torch.randn(500, 64) for c in centres])  # (4000, 64)
    chosen = select_coreset(points, 40, chunk_rows=1000)  # 4 random chunks of 1000, 10 kept in each
    assert chosen.shape == (40,) and chosen.unique().numel() == 40
    assert set((chosen // 500).tolist()) == set(range(8))
