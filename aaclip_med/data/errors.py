"""The one exception type of the data layer.

A `DataError` always names the offending file (or manifest line) and what is wrong with it, so a
cohort run can log it, skip the case and go on.
"""

from __future__ import annotations

from os import PathLike

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input data: unreadable, inconsistent or outside the supported layouts.

    Args:
        path: the file, folder or manifest the problem was found in.
        problem: what is wrong and, where possible, how to fix it.
    """

    def __init__(self, path: str | PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        msg = problem if path is None else f"{path}: {problem}"
        super().__init__(msg)
