"""How a failed case is reported in logs and summaries."""

from __future__ import annotations

__all__ = ["short_error"]


def short_error(err: BaseException) -> str:
    """Type and first line of an error (readers append pages of tracebacks), at most 400 characters."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {(lines[0] if lines else '')[:400]}"
