"""One metric value out of the evaluation API, for tests comparing single numbers."""

from aaclip_med.evaluation.metrics import image_metrics, pixel_metrics


def pixel_value(maps, masks, name: str, fpr_limit: float = 0.3):
    """``name`` (auroc, ap, f1_max, aupro) of the pixel metrics; None when undefined."""
    result, _ = pixel_metrics(maps, masks, fpr_limit=fpr_limit, with_aupro=name == "aupro")
    return None if result is None else getattr(result, name)


def image_value(scores, labels, name: str):
    """``name`` (auroc, ap, f1_max) of the image metrics; None when undefined."""
    result, _ = image_metrics(scores, labels)
    return None if result is None else getattr(result, name)
