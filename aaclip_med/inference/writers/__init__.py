"""Output writers, one format per module; every file is written atomically (see ``atomic.py``)."""

from aaclip_med.inference.writers.nifti import write_nifti_mask, write_nifti_overlay
from aaclip_med.inference.writers.png import write_blend_png, write_heatmap_png
from aaclip_med.inference.writers.scores import write_score_tables

__all__ = [
    "write_nifti_overlay",
    "write_nifti_mask",
    "write_heatmap_png",
    "write_blend_png",
    "write_score_tables",
]
