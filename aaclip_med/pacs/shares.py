"""Each rank's share of a work list, balanced by instance count.

Series differ by orders of magnitude (a 3-slice scout next to a 2,000-slice CT), and retrieval and
inference time follow the instance count, so shares are balanced on it rather than on row index:
the longest-processing-time rule, series taken largest first and each given to the rank with the
least work so far. Ties are broken by Series UID and rank number, so every rank computes the same
split from the same list, whatever order it read it in.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["balanced_shares"]


class _Sized(Protocol):
    series_uid: str
    instances: int


T = TypeVar("T", bound=_Sized)


def balanced_shares(items: Sequence[T], ranks: int) -> list[list[T]]:
    """``ranks`` lists of ``items`` with instance totals as even as the rule allows; each sorted by Series UID.

    A series whose count is unknown (0: the server did not say) weighs as one instance.
    """
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks}")
    shares: list[list[T]] = [[] for _ in range(ranks)]
    loads = [(0, rank) for rank in range(ranks)]  # (instances so far, rank): the heap's smallest takes the next
    for item in sorted(items, key=lambda i: (-max(i.instances, 1), i.series_uid)):
        load, rank = heapq.heappop(loads)
        shares[rank].append(item)
        heapq.heappush(loads, (load + max(item.instances, 1), rank))
    return [sorted(share, key=lambda i: i.series_uid) for share in shares]
