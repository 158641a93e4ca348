"""A bad value of a named parameter, said in the words of whoever gave it.

Library code names its own parameters (``max_mb=0: must be positive``): that is what a Python
caller wrote. The command line gave the same value through a flag, so its error printer shows the
flag instead (``--max-mb 0: must be positive``) from the one table of
:mod:`aaclip_med.flags`. Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ParameterError"]


class _Names(dict):
    """Placeholder names for :meth:`ParameterError.message`: a flag where the table has one, else the name."""

    def __init__(self, flags: Mapping[str, str]) -> None:
        super().__init__(flags)

    def __missing__(self, key: str) -> str:
        return key


class ParameterError(ValueError):
    """``parameter`` has a value that cannot work.

    Args:
        parameter: the keyword of the library call (``max_mb``, ``device``).
        value: the value given.
        problem: what is wrong and how to fix it. Other parameters it names are written as
            ``{name}`` placeholders (``"use {device}=cpu"``), so that the CLI shows them as flags too.
    """

    def __init__(self, parameter: str, value: object, problem: str) -> None:
        self.parameter, self.value, self.problem = parameter, value, problem
        super().__init__(self.message())

    def message(self, flags: Mapping[str, str] | None = None) -> str:
        """The message with parameters named by ``flags`` (parameter -> flag) where it has them."""
        names = _Names(flags or {})
        flag = names.get(self.parameter)
        shown = f"{flag} {self.value}" if flag else f"{self.parameter}={self.value!r}"
        return f"{shown}: {self.problem.format_map(names)}"
