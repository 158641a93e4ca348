"""The bundled sample data set and the one-command demo (``aaclip-med sample`` / ``aaclip-med demo``).

The sample is built from real images that ship inside installed packages (pydicom, nibabel,
scikit-image), with synthetic anomalies whose masks are exact, so a fresh machine can run the whole
product - DICOM/NIfTI/images in, overlays and an evaluation report out - without any download.
"""

from aaclip_med._lazy import lazy_exports

# loaded on first use: the CLI reads aaclip_med.demo.settings without numpy
_MODULES = {"aaclip_med.demo.sample": ("SampleCase", "build_sample_items", "generate_sample")}

__all__ = ["SampleCase", "build_sample_items", "generate_sample"]
__getattr__ = lazy_exports(__name__, _MODULES)
