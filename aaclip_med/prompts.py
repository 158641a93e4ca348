"""Prompt ensemble of spec section 4: templates, state descriptors and class descriptions, as data.

A class description is free text ("dark bottle", "scan"). Descriptions live in
``aaclip_med/configs/descriptions/<dataset>.json``, which hold the exact strings of the published
runs (every zero-shot number depends on them, through the text anchors), and can be overridden by
the user; templates and descriptors can be replaced too (the paper's Tables 6 and 7 test unseen ones).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "PromptSet",
    "DEFAULT_PROMPTS",
    "list_description_sets",
    "get_descriptions",
    "resolve_description",
]


@dataclass(frozen=True)
class PromptSet:
    """Templates and state descriptors; ``{}`` is filled with the class description.

    Every descriptor goes into every template, so the default set gives 3 x 2 = 6 normal and
    5 x 2 = 10 anomalous sentences per class.
    """

    templates: tuple[str, ...] = ("{}.", "a photo of {}.")
    normal: tuple[str, ...] = ("{}", "a {}", "the {}")
    anomalous: tuple[str, ...] = (
        "a damaged {}",
        "a broken {}",
        "a {} with flaw",
        "a {} with defect",
        "a {} with damage",
    )

    def __post_init__(self) -> None:
        for field_name in ("templates", "normal", "anomalous"):
            phrases = getattr(self, field_name)
            if not phrases:
                raise ValueError(f"PromptSet.{field_name} must not be empty.")
            bad = [p for p in phrases if p.count("{}") != 1]
            if bad:
                raise ValueError(f"PromptSet.{field_name} entries need exactly one '{{}}' placeholder: {bad}")

    def sentences(self, description: str) -> tuple[list[str], list[str]]:
        """(normal sentences, anomalous sentences) for one class description."""
        if not description or not description.strip():
            raise ValueError("A class description must be a non-empty text.")
        desc = description.strip()

        def expand(states: tuple[str, ...]) -> list[str]:
            return [template.format(state.format(desc)) for state in states for template in self.templates]

        return expand(self.normal), expand(self.anomalous)

    @classmethod
    def from_dict(cls, data: Mapping[str, list[str]]) -> PromptSet:
        """From a JSON-style mapping with any of the keys templates / normal / anomalous."""
        unknown = set(data) - {"templates", "normal", "anomalous"}
        if unknown:
            raise ValueError(f"Unknown prompt keys {sorted(unknown)}; use templates, normal, anomalous.")
        return cls(**{k: tuple(v) for k, v in data.items()})


DEFAULT_PROMPTS = PromptSet()


def _description_dir():
    return resources.files("aaclip_med").joinpath("configs", "descriptions")


def list_description_sets() -> list[str]:
    """Names of the shipped description registries (one per dataset family)."""
    return sorted(p.name[: -len(".json")] for p in _description_dir().iterdir() if p.name.endswith(".json"))


def get_descriptions(dataset: str) -> dict[str, str]:
    """A fresh copy of the class -> description registry of ``dataset``."""
    entry = _description_dir().joinpath(f"{dataset}.json")
    if not entry.is_file():
        msg = f"No class descriptions for dataset {dataset!r}; available: {list_description_sets()}."
        raise ValueError(msg)
    return json.loads(entry.read_text())


def _all_descriptions() -> dict[str, str]:
    merged: dict[str, str] = {}
    for name in list_description_sets():
        merged.update(get_descriptions(name))
    return merged


def _fold(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def resolve_description(
    class_name: str,
    overrides: Mapping[str, str] | None = None,
    dataset: str | None = None,
) -> str:
    """The description of ``class_name``: user overrides first, then the dataset's registry, then any.

    Raises:
        ValueError: when the class is unknown everywhere; the message says how to supply one.
    """
    if overrides and class_name in overrides:
        return overrides[class_name]
    registry = get_descriptions(dataset) if dataset else _all_descriptions()
    if class_name in registry:
        return registry[class_name]
    # Folder names vary between copies of a dataset ("CVC-ClinicDB", "clinicdb", "Brain_AD"):
    # fall back to a match that ignores case, spaces, '-' and '_'.
    folded = {_fold(name): text for name, text in registry.items()}
    if _fold(class_name) in folded:
        return folded[_fold(class_name)]
    msg = (
        f"No description for class {class_name!r}"
        + (f" in dataset {dataset!r}" if dataset else "")
        + "; pass one (e.g. --description 'scan' or a descriptions JSON mapping class -> text)."
    )
    raise ValueError(msg)
