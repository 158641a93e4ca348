"""Synthetic anomalies with exact masks: one home for the demo's sample and normal-only training.

- :mod:`.kinds`: the registry, kind name -> generator class (a new kind: one module, one line).
- :mod:`.base`: the exact-mask rule, :class:`SyntheticAnomaly`, the generator base with retries
  and its dictionary twin, :class:`SyntheticLabeld` (labels decided after the last geometric step).
- :mod:`.shapes`: random shapes (value noise, Perlin noise, blobs, scratches, feathering).
- :mod:`.perlin`, :mod:`.cutpaste`, :mod:`.lesion`, :mod:`.surface`: the generators, MONAI random
  transforms: DRAEM's Perlin-noise anomalies, CutPaste's patch and scar, lesion blobs in the
  modality's own units, scratches, holes and colour spots. The bundled sample plants its anomalies
  with the same classes (``plant_array``) and :func:`plant_lesion`.
- :mod:`.synthetic`: :class:`RandSyntheticAnomalyd`, which makes a normal sample anomalous with
  probability ``p`` using one of the chosen kinds.

Names are loaded on first use, so importing :mod:`.kinds` (the CLI) does not import torch.
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

_MODULES = {
    "aaclip_med.anomalies.kinds": ("SYNTHETIC_KINDS", "DEFAULT_PROBABILITY", "parse_kinds", "generator_class"),
    "aaclip_med.anomalies.base": ("SyntheticAnomaly", "RandAnomaly", "SyntheticLabeld"),
    "aaclip_med.anomalies.perlin": ("RandPerlinAnomaly", "RandPerlinAnomalyd"),
    "aaclip_med.anomalies.cutpaste": ("RandCutPaste", "RandCutPasted"),
    "aaclip_med.anomalies.lesion": ("RandLesion", "RandLesiond", "foreground_mask", "plant_lesion"),
    "aaclip_med.anomalies.surface": ("RandScratch", "RandHole", "RandColorSpot"),
    "aaclip_med.anomalies.synthetic": ("RandSyntheticAnomalyd", "synthetic_transform"),
}

__all__ = sorted(name for names in _MODULES.values() for name in names)
__getattr__ = lazy_exports(__name__, _MODULES)
