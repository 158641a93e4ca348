"""Names of the files a manifest run writes, for the readers of a predictions folder (standard library
only: ``aaclip-med evaluate`` checks its ``--predictions`` folder without torch)."""

from __future__ import annotations

__all__ = ["PREDICTIONS_FILE"]

PREDICTIONS_FILE = "predictions.jsonl"  # one JSON line per predicted record
