"""Errors in one line: how a failed case or series is reported in logs, summaries and records.

Readers, servers and libraries append pages of tracebacks or HTML to their messages; a log line
or a summary entry keeps the first line only, bounded.
"""

from __future__ import annotations

__all__ = ["one_line", "short_error"]


def one_line(text: object, limit: int = 300) -> str:
    """First line of ``text``, at most ``limit`` characters (longer ones end with "...")."""
    lines = str(text).strip().splitlines()
    line = lines[0].strip() if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def short_error(err: BaseException, limit: int = 400) -> str:
    """``Type: first line`` of an error, the line at most ``limit`` characters."""
    return f"{type(err).__name__}: {one_line(err, limit)}"
