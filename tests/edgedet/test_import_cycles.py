"""The runtime's model modules import in one direction: loading -> classifier -> detector, and
the contract/manifest modules below them, in no import cycle (read from every import statement,
lazy ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACYCLIC = (
    "edgedet.contract",
    "edgedet.manifest",
    "edgedet.detector",
    "edgedet.classifier",
    "edgedet.loading",
)


def module_files() -> dict[str, Path]:
    out = {}
    for path in (ROOT / "edgedet").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the edgedet modules it imports; ``from pkg import mod`` counts as mod, not pkg."""
    files = module_files()
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                subs = [
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if f"{node.module}.{a.name}" in files
                ]
                deps.update(subs if len(subs) == len(node.names) else [node.module, *subs])
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_model_modules_are_in_no_import_cycle():
    graph = import_graph()
    cycles = [m for m in ACYCLIC if m in reachable(graph, m)]
    assert cycles == [], f"{cycles} import themselves through other modules"


def test_the_cycle_check_sees_a_cycle():
    assert "a" in reachable({"a": {"b"}, "b": {"a"}}, "a")
    assert "edgedet.detector" in reachable(import_graph(), "edgedet.loading")
    assert "edgedet.detector" in reachable(import_graph(), "edgedet.classifier")
