"""Per-sample preprocessing chosen by the record's own ``modality`` field.

A manifest may mix CT slices, MR slices and photos; each needs its own intensity preset (HU
windows are meaningless for a photo). Training, its synthetic validation set and the benchmarks
all wrap their pipelines in :class:`ModalityDispatch`.
"""

from __future__ import annotations

from collections.abc import Callable

from aaclip_med.keys import Keys

__all__ = ["ModalityDispatch"]


class ModalityDispatch:
    """Per-sample preprocessing by the record's ``modality`` field (else the default preset).

    Pipelines are built once per modality and share the random state set through
    :meth:`set_random_state`, so seeding per sample still works.

    Args:
        build: ``modality -> transform`` (e.g. a partial of ``training_transforms``).
        default: the modality of records without one.
    """

    def __init__(self, build: Callable[[str | dict], Callable], default: str | dict) -> None:
        self.build, self.default = build, default
        self._pipelines: dict[str, Callable] = {}
        self._seed: int | None = None

    def _pipeline(self, modality: str | dict) -> Callable:
        key = modality if isinstance(modality, str) else repr(sorted(modality.items()))
        if key not in self._pipelines:
            self._pipelines[key] = self.build(modality)
        return self._pipelines[key]

    def set_random_state(self, seed: int | None = None, state=None) -> ModalityDispatch:
        self._seed = seed
        return self

    def __call__(self, data: dict) -> dict:
        pipeline = self._pipeline(data.get(Keys.MODALITY) or self.default)
        if self._seed is not None and hasattr(pipeline, "set_random_state"):
            pipeline.set_random_state(seed=self._seed)
        return pipeline(data)
