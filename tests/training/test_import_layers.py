"""training/synthetic.py reaches no module that imports it back: ModalityDispatch lives in the data layer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "aaclip_med"


def _imports(path: Path) -> set[str]:
    """aaclip_med modules named by the imports of ``path`` (module level and inside functions)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {n for n in names if n.startswith("aaclip_med")}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = _imports(path)
    return {m: {d for d in deps if d in graph} for m, deps in graph.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_no_circle_between_training_data_and_training_synthetic():
    graph = _graph()
    assert "aaclip_med.training.synthetic" in _reachable(graph, "aaclip_med.training.data")  # the data hook uses it
    assert "aaclip_med.training.data" not in _reachable(graph, "aaclip_med.training.synthetic")
    assert "aaclip_med.data.dispatch" in graph["aaclip_med.training.synthetic"]


def test_the_graph_sees_imports_inside_functions():
    # training/data.py imports training/synthetic inside manifest_training_data only
    assert "aaclip_med.training.synthetic" in _graph()["aaclip_med.training.data"]
