"""Synthetic anomalies with exact masks: one home for the demo's sample and normal-only training.

- :mod:`.shapes`: random shapes (value noise, Perlin noise, blobs, scratches, feathering).
- :mod:`.planting`: ``plant_*`` functions on numpy arrays, used to build the bundled sample.
- :mod:`.perlin`, :mod:`.cutpaste`, :mod:`.lesion`: MONAI random transforms (array + dictionary
  twins) used by training: DRAEM's Perlin-noise anomalies, CutPaste's patch and scar, lesion blobs
  in the modality's own units.
- :mod:`.synthetic`: :class:`RandSyntheticAnomalyd`, which makes a normal sample anomalous with
  probability ``p`` using one of the chosen kinds.

Names are loaded on first use, so importing :mod:`.kinds` (the CLI) does not import torch.
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

_API = {
    "SYNTHETIC_KINDS": "aaclip_med.anomalies.kinds",
    "DEFAULT_PROBABILITY": "aaclip_med.anomalies.kinds",
    "parse_kinds": "aaclip_med.anomalies.kinds",
    "SyntheticAnomaly": "aaclip_med.anomalies.base",
    "RandPerlinAnomaly": "aaclip_med.anomalies.perlin",
    "RandPerlinAnomalyd": "aaclip_med.anomalies.perlin",
    "RandCutPaste": "aaclip_med.anomalies.cutpaste",
    "RandCutPasted": "aaclip_med.anomalies.cutpaste",
    "RandLesion": "aaclip_med.anomalies.lesion",
    "RandLesiond": "aaclip_med.anomalies.lesion",
    "foreground_mask": "aaclip_med.anomalies.lesion",
    "RandSyntheticAnomalyd": "aaclip_med.anomalies.synthetic",
    "synthetic_transform": "aaclip_med.anomalies.synthetic",
}

__all__ = sorted(_API)
__getattr__ = lazy_exports(__name__, _API)
