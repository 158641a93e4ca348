"""The module graph of aaclip_med: no import circle, and no import from a lower layer up into a higher one.

Every ``import`` and ``from ... import`` is read from the source (function-local ones included, since
they run too); ``if TYPE_CHECKING:`` blocks are left out of the circle check only (they never run,
but an annotation that names a higher layer is still an arrow up). A module belongs to the unit of
its first name below ``aaclip_med`` (``aaclip_med.export.card`` -> ``export``; a module of the root
such as ``aaclip_med.keys`` is its own unit). Units of one layer may import each other as long as no
circle forms.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aaclip_med"

# Top to bottom: a unit imports only units of its own layer or of layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("commands",),
    ("pacs", "demo", "bundle_support"),
    ("arguments", "flags"),  # options declared once for the commands and the MONAI Deploy app (pacs), and
    # the one parameter -> flag table their error printers use
    ("networks",),  # the network a run uses: built from its files, or an exported graph
    ("export", "adaptation", "training"),
    ("evaluation",),
    ("inference",),
    ("memory",),  # the reference memory's file and search, read by inference (built by adaptation, above)
    ("model",),
    ("data", "anomalies"),  # synthetic anomalies are MONAI transforms that the training pipeline applies
    ("__init__", "_lazy", "keys", "files", "identity", "presets", "prompts", "precision", "scoring", "distributed",
     "workers", "losses", "errors", "packages", "units", "timestamps"),
)

# Imports known to go up or to close a circle, each with who removes it; the lead deletes an entry
# once the branch that fixes it is merged (test_known_exceptions_still_exist says when one is gone).
KNOWN_UPWARD: dict[tuple[str, str], str] = {}
KNOWN_CIRCLES: dict[frozenset[str], str] = {}


def _module_name(path: Path) -> str:
    parts = ["aaclip_med", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(source: str, name: str, is_package: bool, modules: set[str]) -> list[tuple[str, bool]]:
    """(imported module, runs) for every import in the ``source`` of module ``name``; ``runs`` is False
    inside ``if TYPE_CHECKING``."""
    package = name if is_package else name.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, runs: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runs)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, runs) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:  # "from pkg import submodule" imports the submodule
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in modules else base, runs))
        for child in ast.iter_child_nodes(node):
            visit(child, runs)

    visit(ast.parse(source), True)
    return found


def _graph() -> dict[str, dict[str, bool]]:
    """module -> {imported aaclip_med module: whether some import of it runs}."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph: dict[str, dict[str, bool]] = {}
    for name, path in paths.items():
        edges: dict[str, bool] = {}
        for target, runs in _imports(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", modules):
            if not (target == "aaclip_med" or target.startswith("aaclip_med.")):
                continue
            while target not in modules:  # "from aaclip_med.x import name": the module x
                target = target.rpartition(".")[0]
            if target != name:
                edges[target] = edges.get(target, False) or runs
        graph[name] = edges
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer_of() -> dict[str, int]:
    return {unit: depth for depth, units in enumerate(LAYERS) for unit in units}


def _upward(graph: dict[str, dict[str, bool]]) -> dict[tuple[str, str], str]:
    """(module, imported unit's module prefix) -> a line, for every import of a higher layer."""
    layer = _layer_of()
    found = {}
    for module, edges in graph.items():
        for target in edges:
            if layer[_unit(target)] < layer[_unit(module)]:
                key = (module, f"aaclip_med.{_unit(target)}")
                found[key] = f"{module} ({_unit(module)}) imports {target} ({_unit(target)}, a higher layer)"
    return found


def _circles(graph: dict[str, dict[str, bool]]) -> list[frozenset[str]]:
    """Strongly connected groups of more than one module, over the imports that run (Tarjan)."""
    edges = {m: [t for t, runs in e.items() if runs] for m, e in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[frozenset[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return groups


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in _graph()}
    assert units <= set(_layer_of()), f"give these a layer in LAYERS: {sorted(units - set(_layer_of()))}"


def test_no_import_goes_up_a_layer():
    found = _upward(_graph())
    unexpected = sorted(line for key, line in found.items() if key not in KNOWN_UPWARD)
    assert not unexpected, "imports from a lower layer up into a higher one:\n" + "\n".join(unexpected)


def test_no_import_circle():
    circles = [sorted(group) for group in _circles(_graph()) if group not in KNOWN_CIRCLES]
    assert not circles, f"import circles: {circles}"


def test_known_exceptions_still_exist():
    graph = _graph()
    gone = [key for key in KNOWN_UPWARD if key not in _upward(graph)]
    gone += [sorted(group) for group in KNOWN_CIRCLES if group not in _circles(graph)]
    assert not gone, f"fixed: remove from the known exceptions {gone}"


@pytest.mark.parametrize(("source", "expected"), [
    ("from aaclip_med.commands import _common\n", ("aaclip_med.commands._common", True)),
    ("from ..export import card\n", ("aaclip_med.export.card", True)),
    ("def f():\n    from aaclip_med.export.card import read_card\n", ("aaclip_med.export.card", True)),
    ("if TYPE_CHECKING:\n    from aaclip_med.export import x\n", ("aaclip_med.export", False)),
])
def test_the_checker_reads_submodules_relative_local_and_type_checking_imports(source, expected):
    modules = {"aaclip_med.commands", "aaclip_med.commands._common", "aaclip_med.export", "aaclip_med.export.card"}
    assert expected in _imports(source, "aaclip_med.inference.probe", False, modules)


def test_the_checker_finds_an_upward_import_and_a_circle():
    graph = {"aaclip_med.model.a": {"aaclip_med.inference.b": True}, "aaclip_med.inference.b": {"aaclip_med.model.a": True}}
    assert ("aaclip_med.model.a", "aaclip_med.inference") in _upward(graph)
    assert _circles(graph) == [frozenset(graph)]
    graph["aaclip_med.inference.b"]["aaclip_med.model.a"] = False  # a TYPE_CHECKING import does not run
    assert _circles(graph) == []
