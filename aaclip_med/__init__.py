"""aaclip-med: AA-CLIP zero-shot anomaly detection and segmentation for MONAI pipelines."""

__version__ = "0.1.0"
