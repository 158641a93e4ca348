"""The options shared by the commands, as the commands import them.

They are declared once in :mod:`aaclip_med.arguments`, where the MONAI Deploy app
(``aaclip_med.pacs.deploy_app``) reads them too without importing the command layer; this module
only names them for the commands.
"""

from __future__ import annotations

from aaclip_med.arguments import (
    INFERENCE_PRECISIONS,
    PAPER_BACKBONE,
    PRECISIONS,
    _slice_range,
    add_engine_arguments,
    add_inference_arguments,
    add_model_arguments,
    add_progress_argument,
    check_model_arguments,
    check_paths,
    descriptions_from_args,
    finite_float,
    fraction,
    inference_options_from_args,
    model_from_args,
    network_from_args,
)

__all__ = [
    "INFERENCE_PRECISIONS",
    "PAPER_BACKBONE",
    "PRECISIONS",
    "_slice_range",
    "add_engine_arguments",
    "add_inference_arguments",
    "add_model_arguments",
    "add_progress_argument",
    "check_model_arguments",
    "check_paths",
    "descriptions_from_args",
    "finite_float",
    "fraction",
    "inference_options_from_args",
    "model_from_args",
    "network_from_args",
]
