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

_MODULES = {
    "aaclip_med.anomalies.kinds": ("SYNTHETIC_KINDS", "DEFAULT_PROBABILITY", "parse_kinds"),
    "aaclip_med.anomalies.base": ("SyntheticAnomaly",),
    "aaclip_med.anomalies.perlin": ("RandPerlinAnomaly", "RandPerlinAnomalyd"),
    "aaclip_med.anomalies.cutpaste": ("RandCutPaste", "RandCutPasted"),
    "aaclip_med.anomalies.lesion": ("RandLesion", "RandLesiond", "foreground_mask"),
    "aaclip_med.anomalies.synthetic": ("RandSyntheticAnomalyd", "synthetic_transform"),
}

__all__ = sorted(name for names in _MODULES.values() for name in names)
__getattr__ = lazy_exports(__name__, _MODULES)
