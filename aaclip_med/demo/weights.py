"""Which CLIP weights the demo runs with: a local file, open_clip's cache, a download, or random.

Order of preference:

1. ``--backbone-weights`` (a local file, an open_clip tag, or ``random``);
2. the file named by the environment variable ``AACLIP_MED_CLIP_WEIGHTS``;
3. a copy already in open_clip's caches (Hugging Face hub cache or ``~/.cache/clip``);
4. a download of the ``openai`` tag, when the network answers and ``offline`` is not set;
5. otherwise **random weights**: the pipeline still runs end to end, but every map and number is
   meaningless. :class:`WeightsChoice` carries that fact so the console and the report say it.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import open_clip

from aaclip_med.demo.settings import DEMO_BACKBONE, DEMO_IMAGE_SIZE
from aaclip_med.identity import is_random_weights

__all__ = ["WeightsChoice", "choose_weights", "cached_weights", "ENV_WEIGHTS", "DEMO_BACKBONE", "DEMO_IMAGE_SIZE"]

logger = logging.getLogger(__name__)

ENV_WEIGHTS = "AACLIP_MED_CLIP_WEIGHTS"
_TAG = "openai"
_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class WeightsChoice:
    """The backbone weights of a demo run and why they were chosen."""

    pretrained: str  # local path, open_clip tag, or "random"
    source: str  # "argument", "environment", "cache", "download" or "random-fallback"
    reason: str

    @property
    def random(self) -> bool:
        return is_random_weights(self.pretrained)


def cached_weights(backbone: str, tag: str = _TAG) -> Path | None:
    """A local copy of open_clip's ``backbone``/``tag`` weights, without touching the network."""
    cfg = open_clip.get_pretrained_cfg(backbone, tag) or {}
    if cfg.get("hf_hub"):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # open_clip works without the hub client; then only the URL cache counts
            try_to_load_from_cache = None
        for name in _HF_FILES if try_to_load_from_cache else ():
            found = try_to_load_from_cache(cfg["hf_hub"].rstrip("/"), name)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if cfg.get("url"):
        legacy = Path.home() / ".cache" / "clip" / Path(cfg["url"]).name
        if legacy.is_file():
            return legacy
    return None


def _online(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether ``host`` answers on https within ``timeout`` seconds (one quick probe, no retries)."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def choose_weights(backbone: str, requested: str | None = None, offline: bool = False,
                   environ: dict | None = None) -> WeightsChoice:
    """Pick the demo's backbone weights (see the module docstring for the order).

    Args:
        backbone: open_clip model name.
        requested: ``--backbone-weights`` value, if given (always wins).
        offline: never try a download.
        environ: environment to read ``AACLIP_MED_CLIP_WEIGHTS`` from (default ``os.environ``).

    Raises:
        FileNotFoundError: the environment variable names a file that does not exist.
    """
    environ = os.environ if environ is None else environ
    if requested:
        return WeightsChoice(requested, "argument", f"--backbone-weights {requested}")
    if environ.get(ENV_WEIGHTS):
        path = Path(environ[ENV_WEIGHTS]).expanduser()
        if not path.is_file():
            msg = f"{ENV_WEIGHTS}={path} does not exist; point it at a CLIP weights file or unset it."
            raise FileNotFoundError(msg)
        return WeightsChoice(str(path), "environment", f"{ENV_WEIGHTS}={path}")
    cached = cached_weights(backbone)
    if cached is not None:
        return WeightsChoice(str(cached), "cache", f"open_clip cache {cached}")
    if not offline and open_clip.get_pretrained_cfg(backbone, _TAG) and _online():
        return WeightsChoice(_TAG, "download", f"downloading open_clip {backbone}/{_TAG}")
    why = "offline mode" if offline else "no local copy and no network"
    return WeightsChoice("random", "random-fallback", f"{why}: no {backbone} CLIP weights available")
