"""``--engine auto`` at run time: the facts the rule reads, and the cached graph it runs.

:func:`decide` gathers what :func:`aaclip_med.export.choice.choose_engine` needs (the device, the
resolved precision, the CPU flags, oneDNN in torch, the installed runtimes, what the run asks
that an exported graph cannot do). When the rule picks an exported-graph engine, :func:`cached_graph`
returns the graph folder from the user's cache, exporting it first when it is missing. The cache
folder of a graph is named by the :func:`~aaclip_med.identity.digest` of everything the graph fixes
(:data:`~aaclip_med.identity.GRAPH_FIELDS`); before an entry is used its card is compared with
the run field by field and its files with the card, and an entry that differs in anything (another
graph in that folder, a cut-short file, an edited card) is exported again, with a warning naming
the difference. An entry is exported in a staging folder and moved into place whole, so a killed
export leaves no entry behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from aaclip_med.export.card import check_files, read_card
from aaclip_med.export.choice import PIN_ENV, EngineChoice, Machine, choose_engine
from aaclip_med.export.registry import DEFAULT_OPSET, FORMATS
from aaclip_med.files import staging_folder
from aaclip_med.identity import GRAPH_FIELDS, IDENTITY_VERSION, differences, digest, network_record
from aaclip_med.packages import DISTRIBUTIONS, installed_versions
from aaclip_med.precision import cpu_flags, resolve_precision
from aaclip_med.presets import AUTO, default_domain
from aaclip_med.prompts import resolve_description

__all__ = ["CACHE_ENV", "cache_root", "current_machine", "decide", "graph_request", "cached_graph"]

logger = logging.getLogger(__name__)

CACHE_ENV = "AACLIP_MED_CACHE"
_GRAPHS = "graphs"


def cache_root(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``explicit``, else ``$AACLIP_MED_CACHE``, else ``$XDG_CACHE_HOME/aaclip-med``,
    else ``~/.cache/aaclip-med``."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aaclip-med"


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed_modules() -> frozenset[str]:
    """The optional modules of :data:`~aaclip_med.packages.DISTRIBUTIONS` that this environment has."""
    return frozenset(module for module in DISTRIBUTIONS if "." not in module and _importable(module))


def current_machine(device: str) -> Machine:
    """What the rule reads of this machine, for a run on ``device``."""
    return Machine(device=torch.device(device).type, cpu_flags=cpu_flags(),
                   onednn=bool(torch.backends.mkldnn.is_available()), installed=installed_modules())


def _blockers(options, several_classes: bool) -> list[str]:
    """Why this run cannot use an exported graph (empty: it can)."""
    reasons = []
    if options.references is not None:
        reasons.append("a reference memory (--references) is searched with the patch features, which an exported "
                       "graph does not output")
    if several_classes:
        reasons.append("a manifest run scores several classes, an exported graph one")
    if options.domain is None and options.modality == AUTO:
        reasons.append("the domain is picked per source (--modality auto without --domain), an exported graph "
                       "fixes one")
    return reasons


def decide(options, several_classes: bool = False, machine: Machine | None = None) -> EngineChoice:
    """The engine ``--engine auto`` runs this inference run with (see :mod:`aaclip_med.export.choice`)."""
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    machine = machine or current_machine(device)
    precision = resolve_precision(options.precision, device, inference=True)
    return choose_engine(precision, machine, blockers=_blockers(options, several_classes),
                         pinned=os.environ.get(PIN_ENV))


def _versions(fmt: str) -> dict[str, str | None]:
    """The versions of the packages that write a graph of ``fmt`` (a change of one makes another graph)."""
    modules = FORMATS[fmt].needs
    return installed_versions(("aaclip-med", "torch", *(DISTRIBUTIONS[m][0] for m in modules)))


def graph_request(model, weights: str | None, options, fmt: str) -> dict:
    """What a graph of ``model`` for this run fixes (:data:`~aaclip_med.identity.GRAPH_FIELDS`), as a
    card's identity records it, plus the export settings."""
    from aaclip_med.inference.run_info import run_record

    class_name = options.resolved_class
    preset = None if options.modality == AUTO else options.modality
    return {"identity_version": IDENTITY_VERSION} | network_record(run_record(model, weights, {})) | {
        "class_name": class_name,
        "description": options.description or resolve_description(class_name, options.descriptions),
        "domain": options.domain or default_domain(options.modality), "preset": preset,
        "levels": list(model.config.levels), "logit_scale": float(model.config.logit_scale),
        "format": fmt, "precision": "fp32", "opset": DEFAULT_OPSET if FORMATS[fmt].opset else None,
        "versions": _versions(fmt),
    }


def _card_request(card: dict) -> dict:
    """A card's content as :func:`graph_request` gives it (the versions of its own format)."""
    names = _versions(card["format"]) if card.get("format") in FORMATS else {}
    versions = card.get("versions") or {}
    return dict(card["identity"]) | {"format": card["format"], "precision": card["precision"],
                                     "opset": card.get("opset"), "versions": {n: versions.get(n) for n in names}}


def _unusable(folder: Path, request: dict) -> str | None:
    """Why the entry in ``folder`` cannot run ``request`` (None: it can)."""
    try:
        card = read_card(folder)
        found = differences(_card_request(card), request, GRAPH_FIELDS, what="cached graph")
        if found.refused or found.unknown:
            return "; ".join(found.refused + [f"{name}: the cached card does not record it" for name in found.unknown])
        check_files(card, folder)
    except (OSError, ValueError, KeyError, TypeError) as err:
        return str(err)
    return None


def cached_graph(model, weights: str | None, options, fmt: str, root: str | os.PathLike | None = None) -> Path:
    """The cached graph folder of ``model`` for this run in format ``fmt``, exported now when the cache
    has no usable one.

    Args:
        model: the :class:`~aaclip_med.model.AAClip` the graph is made of.
        weights: its adapters file (recorded in the card).
        options: the run's :class:`~aaclip_med.inference.InferenceOptions` (class, description, preset, domain).
        fmt: a format of :data:`~aaclip_med.export.registry.FORMATS`.
        root: the cache folder (default :func:`cache_root`).
    """
    from aaclip_med.export.exporter import export_model

    request = graph_request(model, weights, options, fmt)
    graphs = cache_root(root) / _GRAPHS
    folder = graphs / digest(request, GRAPH_FIELDS)[:24]
    if folder.exists():
        why = _unusable(folder, request)
        if why is None:
            logger.info("cached %s graph %s", fmt, folder)
            return folder
        logger.warning("the cached graph %s cannot run this (%s); exporting it again", folder, why)
    graphs.mkdir(parents=True, exist_ok=True)
    with staging_folder(graphs, "graph") as work:
        export_model(model, work / "entry", fmt, class_name=request["class_name"], description=request["description"],
                     domain=request["domain"], preset=request["preset"], weights=weights)
        if folder.exists():  # the old entry goes with the staging folder
            os.replace(folder, work / "old")
        try:
            os.replace(work / "entry", folder)
        except OSError:  # another run put an entry there meanwhile: use it if it fits, else this is an error
            if _unusable(folder, request) is not None:
                raise
    logger.info("exported the %s graph for --engine auto to %s", fmt, folder)
    return folder
