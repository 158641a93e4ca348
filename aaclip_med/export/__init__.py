"""Exported graphs: TorchScript, ONNX and OpenVINO files of one AA-CLIP class, int8, and their model card.

See docs/export.md. :func:`export_model` writes a folder that ``aaclip-med infer --engine ...
--model DIR`` (:class:`aaclip_med.inference.deployed.DeployedModel`) runs.
"""

from aaclip_med.export.card import CARD_NAME, read_card
from aaclip_med.export.exporter import EXPORT_PRECISIONS, export_model, reference_images
from aaclip_med.export.formats import FORMATS, MODEL_FILES

__all__ = ["CARD_NAME", "EXPORT_PRECISIONS", "FORMATS", "MODEL_FILES", "export_model", "read_card", "reference_images"]
