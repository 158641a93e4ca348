"""The command line's names for library parameters, and the one error printer that uses them.

A :class:`~aaclip_med.errors.ParameterError` raised by library code names a keyword
(``max_mb=0``); the CLI prints it under the flag the user typed (``--max-mb 0``). A parameter
missing here is shown by its keyword, which still says what is wrong.
"""

from __future__ import annotations

from aaclip_med.errors import ParameterError

__all__ = ["FLAGS", "cli_message"]

# library parameter -> the flag that sets it (the same flag in every command that has it)
FLAGS: dict[str, str] = {
    "device": "--device",
    "max_mb": "--max-mb",
    "min_foreground": "--min-foreground",
    "split": "--split",
    "force": "--force",
    "out": "--out",
    "pmap_values": "--pmap-values",
    "calibration": "--calibration",
    "calibrate_normals": "--calibrate-normals",
    "engine": "--engine",
    "model": "--model",
    "backbone": "--backbone",
    "backbone_weights": "--backbone-weights",
    "image_size": "--image-size",
    "weights": "--weights",
    "modality": "--modality",
    "references": "--references",
    "reference_weight": "--reference-weight",
    "reference_search": "--reference-search",
    "precision": "--precision",
    "fmt": "--format",
    "calibration_data": "--calibration-data",
    "url": "--url",
    "password_file": "--password-file",
    "ca_bundle": "--ca-bundle",
    "verify_tls": "--insecure",
    "forward": "--forward",
    "query": "--query",
    "page_size": "--page-size",
}


def cli_message(err: BaseException) -> str:
    """What the CLI prints for ``err``: a ParameterError with its flags, any other error as it is."""
    return err.message(FLAGS) if isinstance(err, ParameterError) else str(err)
