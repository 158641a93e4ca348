"""Greedy k-center coreset selection (PatchCore's memory subsampling), one home for the package.

Greedy k-center picks, one at a time, the feature farthest from every feature picked so far, so the
kept set covers the whole feature cloud (every dropped feature is close to a kept one) instead of
its dense middle. PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection",
CVPR 2022) runs the selection on a random projection of the features (Johnson-Lindenstrauss) to
make each step cheap; distances are then only approximately preserved, which is enough to choose
well-spread centres. The features returned are the original ones.

Each greedy step reads every remaining feature once, so selecting ``k`` of ``N`` costs ``k * N``
distance evaluations: quadratic once ``k`` is a fraction of ``N``. :func:`select_coreset` bounds
it: above :data:`CHUNK_ROWS` rows, the rows are dealt at random into chunks of at most that many
and each chunk keeps its share, so the cost is ``k * CHUNK_ROWS`` (a streaming build reduces its
buffer many times, with new random chunks each time, so features of different sources meet).
"""

from __future__ import annotations

import torch

__all__ = ["greedy_coreset", "select_coreset", "PROJECTION_DIM", "CHUNK_ROWS"]

PROJECTION_DIM = 128  # projected dimension of the selection (PatchCore's default)
CHUNK_ROWS = 8192  # largest set one greedy selection runs on (see select_coreset)
_PROJECT_ROWS = 8192  # rows projected at a time: no float32 copy of the whole feature matrix


def _project(features: torch.Tensor, dim: int, generator: torch.Generator) -> torch.Tensor:
    """(N, D) -> (N, min(D, dim)) float32 through a seeded Gaussian random projection."""
    width = features.shape[1]
    if width <= dim:
        return features.float()
    matrix = torch.randn(width, dim, generator=generator) / dim**0.5  # (D, d)
    matrix = matrix.to(features.device)
    return torch.cat([chunk.float() @ matrix for chunk in features.split(_PROJECT_ROWS)])


def greedy_coreset(features: torch.Tensor, k: int, seed: int = 0, projection_dim: int = PROJECTION_DIM) -> torch.Tensor:
    """Indices (ascending) of ``k`` rows of ``features`` chosen by greedy k-center selection.

    Args:
        features: (N, D) any float dtype.
        k: how many to keep; all rows (``arange(N)``) when ``k >= N``.
        seed: the first centre and the random projection.
        projection_dim: dimension of the random projection the distances are computed in.

    Returns:
        (min(k, N),) int64 indices, sorted.
    """
    count = features.shape[0]
    if k < 1:
        raise ValueError(f"a coreset needs k >= 1, got {k}")
    if k >= count:
        return torch.arange(count)
    generator = torch.Generator().manual_seed(seed)
    points = _project(features, projection_dim, generator)  # (N, d)
    norms = (points * points).sum(dim=1)  # (N,)
    chosen = torch.empty(k, dtype=torch.long)
    chosen[0] = int(torch.randint(count, (1,), generator=generator))
    # squared distance of every point to its nearest chosen centre (up to the constant |c|^2 added below)
    nearest = torch.addmv(norms, points, points[chosen[0]], alpha=-2) + norms[chosen[0]]
    distance = torch.empty_like(nearest)
    for step in range(1, k):
        pick = int(torch.argmax(nearest))
        chosen[step] = pick
        torch.addmv(norms, points, points[pick], alpha=-2, out=distance)
        torch.minimum(nearest, distance.add_(norms[pick]), out=nearest)
    return torch.sort(chosen).values


def select_coreset(features: torch.Tensor, k: int, seed: int = 0, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """:func:`greedy_coreset` of ``k`` rows, run on random chunks of at most ``chunk_rows`` rows (module docstring).

    Returns:
        (min(k, N),) int64 indices, sorted.
    """
    count = features.shape[0]
    if count <= chunk_rows or k >= count:
        return greedy_coreset(features, k, seed)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed + 1))
    parts = order.tensor_split(-(-count // chunk_rows))
    # each chunk keeps its share of k (largest remainders first, so the shares add up to k exactly)
    exact = torch.tensor([k * len(p) / count for p in parts])
    shares = exact.floor().long()
    shares[torch.argsort(exact - shares, descending=True)[: k - int(shares.sum())]] += 1
    kept = [part[greedy_coreset(features[part], max(1, int(n)), seed + i)] for i, (part, n) in enumerate(zip(parts, shares))]
    return torch.sort(torch.cat(kept)).values
