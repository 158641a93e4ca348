"""Load sources in DataLoader workers while the main process runs the network.

Reading and decoding DICOM/NIfTI is the slow part of a cohort run on a GPU; workers prefetch the
next cases. A failure to load is returned (not raised) so one bad file cannot stop the loader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset

from aaclip_med.workers import ignore_interrupt

__all__ = ["prefetch"]


class _LoadDataset(Dataset):
    def __init__(self, items: Sequence[Any], load: Callable[[Any], Any]) -> None:
        self.items, self.load = list(items), load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, Any, BaseException | None]:
        try:
            return index, self.load(self.items[index]), None
        except Exception as err:  # noqa: BLE001 - reported per case by the caller
            return index, None, err


def _identity(item):
    return item


def prefetch(items: Sequence[Any], load: Callable[[Any], Any], workers: int = 0) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Yield ``(item, load(item), None)`` or ``(item, None, error)`` in order.

    Args:
        items: what to load (e.g. cases).
        load: a picklable function (module level) when ``workers`` > 0.
        workers: DataLoader worker processes; 0 loads in the calling process.
    """
    loader = DataLoader(_LoadDataset(items, load), batch_size=None, shuffle=False, num_workers=workers,
                        collate_fn=_identity, prefetch_factor=2 if workers else None,
                        worker_init_fn=ignore_interrupt if workers else None)
    for index, loaded, error in loader:
        yield items[index], loaded, error
