"""``--engine auto``: the rule that picks the engine of a run, written down as data.

Each :class:`Rule` says for which precision and device it holds, what it needs of this machine
(CPU flags, torch built with oneDNN, an installed runtime) and which engine then runs, with the
reason recorded in run.json and logged. The first row whose conditions hold decides; the rows are
checked top to bottom (docs/export.md shows them as a table, and ``benchmarks/export_engines.py``
measures the engines they compare). A run that an exported graph cannot honour (a reference
memory, several classes, a GPU, a domain picked per source) runs on torch before any row is read.

Standard library only: the CLI reads it before torch is imported; the facts that need torch
(:class:`Machine`) are gathered by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aaclip_med.export.registry import ENGINES, FORMATS, TORCH_ENGINE, engine

__all__ = ["AUTO_ENGINE", "PIN_ENV", "pinned_engine", "engine_choices", "Rule", "RULES", "Machine", "EngineChoice", "choose_engine",
           "choose_folder_engine", "requested_engine"]

AUTO_ENGINE = "auto"


def engine_choices() -> list[str]:
    """What ``--engine`` accepts: ``auto`` and the engines of the registry (read when asked)."""
    return [AUTO_ENGINE, *ENGINES]


@dataclass(frozen=True)
class Rule:
    """One row of the rule.

    Attributes:
        precisions: the resolved precisions it holds for.
        engine: the engine it picks.
        reason: why, in words (recorded in run.json and logged).
        fmt: the format of the graph the engine runs (None: torch runs the network itself).
        flags: CPU flags that must all be present.
        without: CPU flags that must all be absent.
        onednn: True / False: torch must / must not have oneDNN; None: either.
        device: the device type it holds for.
    """

    precisions: tuple[str, ...]
    engine: str
    reason: str
    fmt: str | None = None
    flags: tuple[str, ...] = ()
    without: tuple[str, ...] = ()
    onednn: bool | None = None
    device: str = "cpu"


# Edit here (and the table in docs/export.md) after measuring with benchmarks/export_engines.py.
RULES: tuple[Rule, ...] = (
    Rule(("fp32",), TORCH_ENGINE, "fp32 on an AVX-512 CPU where torch has oneDNN: the torch fast path (oneDNN-blocked "
         "weights) ran ViT-L level with OpenVINO fp32 (1.00x; one block 1.04x) and ahead of ONNX Runtime fp32 "
         "(1.13x), and needs no export", flags=("avx512f",), onednn=True),
    Rule(("fp32",), "openvino", "fp32 on a CPU without AVX-512 or a torch without oneDNN: OpenVINO fp32 ran ViT-L "
         "1.29x the torch fast path on an AVX2 EPYC, and oneDNN's blocked layout gains nothing on AVX2 code paths "
         "(0.97x)", fmt="openvino"),
    Rule(("fp32",), TORCH_ENGINE, "fp32 without OpenVINO installed: torch is the fastest engine left (ONNX Runtime "
         "fp32 trailed it)"),
    Rule(("bf16", "fp16"), TORCH_ENGINE, "{precision}: the exported graphs run in fp32 only"),
    Rule(("int8",), TORCH_ENGINE, "int8: torch's dynamic int8 linears need no calibration (map Pearson 0.9996); a "
         "static int8 graph needs calibration references, which an inference run does not take: export one with "
         "'aaclip-med export --precision int8' and run it with --model"),
)

#: names the engine ``auto`` picks on this site, whatever the rule says (one engine for every run)
PIN_ENV = "AACLIP_MED_ENGINE"


@dataclass(frozen=True)
class Machine:
    """What the rule reads of this machine.

    Attributes:
        device: the device type the run uses (``cpu``, ``cuda``).
        cpu_flags: the CPU's feature flags.
        onednn: torch was built with oneDNN (``torch.backends.mkldnn.is_available()``).
        installed: the optional modules that import (keys of :data:`aaclip_med.packages.DISTRIBUTIONS`).
    """

    device: str = "cpu"
    cpu_flags: frozenset[str] = frozenset()
    onednn: bool = True
    installed: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class EngineChoice:
    """The engine a run uses and why (what run.json's ``engine_choice`` records).

    Attributes:
        engine: the engine that runs.
        fmt: the format of the graph it runs (None: the torch network itself).
        precision: the resolved precision the choice was made for.
        reason: why, in words.
        requested: what ``--engine`` said (``auto`` or an engine).
        cache: the cached graph folder run (set once it is built or found), else None.
    """

    engine: str
    fmt: str | None
    precision: str
    reason: str
    requested: str = AUTO_ENGINE
    cache: str | None = None

    def record(self) -> dict:
        return {"name": self.engine, "requested": self.requested, "reason": self.reason, "format": self.fmt,
                "precision": self.precision, "cache": self.cache}

    def describe(self) -> str:
        """The one log line."""
        where = f", graph {self.cache}" if self.cache else ""
        return f"engine {self.engine} (--engine {self.requested}: {self.reason}{where})"


def _installed(name: str, machine: Machine) -> bool:
    return all(module in machine.installed for module in engine(name).needs)


def _holds(rule: Rule, precision: str, machine: Machine) -> bool:
    if precision not in rule.precisions or machine.device != rule.device:
        return False
    if rule.onednn is not None and rule.onednn != machine.onednn:
        return False
    if not set(rule.flags) <= machine.cpu_flags or not machine.cpu_flags.isdisjoint(rule.without):
        return False
    if rule.fmt is not None and not all(module in machine.installed for module in FORMATS[rule.fmt].needs):
        return False
    return _installed(rule.engine, machine)


def pinned_engine(value: str | None) -> tuple[str, str | None] | None:
    """The (engine, format) ``$AACLIP_MED_ENGINE`` pins ``auto`` to, or None when unset.

    Raises:
        ParameterError: a value that names no engine.
    """
    if not value:
        return None
    if value not in ENGINES:
        from aaclip_med.errors import ParameterError

        raise ParameterError("engine", value, f"(${PIN_ENV}) names no engine; set it to one of {list(ENGINES)} or unset it")
    fmt = next((f.name for f in FORMATS.values() if f.engines[0] == value), None)
    return value, None if value == TORCH_ENGINE else fmt


def choose_engine(precision: str, machine: Machine, *, blockers: Iterable[str] = (),
                  rules: Iterable[Rule] | None = None, pinned: str | None = None) -> EngineChoice:
    """The engine ``auto`` runs a network with (no ``--model``).

    Args:
        precision: the run's resolved precision (``fp32``, ``bf16``, ``fp16``, ``int8``).
        machine: what the rules read of this machine.
        blockers: reasons the run cannot use an exported graph (a reference memory, several classes, ...);
            any one makes it torch, with that reason.
        rules: the rows (default :data:`RULES`).
        pinned: the value of ``$AACLIP_MED_ENGINE``: that engine instead of the rows (the blockers still hold).
    """
    blockers = list(blockers)
    if machine.device != "cpu":
        blockers.insert(0, f"the run is on {machine.device}; the exported-graph engines run on the CPU")
    if blockers:
        return EngineChoice(TORCH_ENGINE, None, precision, "; ".join(blockers))
    pin = pinned_engine(pinned)
    if pin is not None:
        name, fmt = pin
        if name != TORCH_ENGINE and precision != "fp32":
            return EngineChoice(TORCH_ENGINE, None, precision, f"${PIN_ENV}={name}, but {precision} runs on torch "
                                "only (the exported graphs are fp32)")
        return EngineChoice(name, fmt, precision, f"pinned by ${PIN_ENV}")
    for rule in RULES if rules is None else rules:
        if _holds(rule, precision, machine):
            return EngineChoice(rule.engine, rule.fmt, precision, rule.reason.format(precision=precision))
    return EngineChoice(TORCH_ENGINE, None, precision, f"no rule for {precision} on {machine.device}: torch")


def choose_folder_engine(fmt: str, installed: Iterable[str]) -> EngineChoice:
    """The engine ``auto`` runs an exported folder of format ``fmt`` with: the first installed engine
    that runs it, in the format's order (:data:`~aaclip_med.export.registry.FORMATS`).

    Raises:
        ImportError: none of its engines is installed (naming them and the ``export`` extra).
    """
    from aaclip_med.packages import install_hint

    installed = frozenset(installed)
    spec = FORMATS[fmt]
    for name in spec.engines:
        if all(module in installed for module in engine(name).needs):
            return EngineChoice(name, fmt, "fp32", f"the first installed engine that runs {fmt} graphs "
                                f"(of {', '.join(spec.engines)})")
    raise ImportError(f"--engine auto: no installed engine runs the {fmt} graph (it runs on {', '.join(spec.engines)}): "
                      f"{install_hint('export')}")


def requested_engine(name: str, fmt: str | None = None) -> EngineChoice:
    """The choice of an engine named by ``--engine`` (not ``auto``)."""
    return EngineChoice(name, fmt, "", "requested by --engine", requested=name)
