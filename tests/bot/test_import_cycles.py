"""No two modules of bot/ import each other, directly or through others (type-only imports too).

A cycle makes import order matter and hides which layer depends on which: config <-> sharding and
store/engine <-> store/batching were the two this test was written to keep cut.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in (ROOT / "bot").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            edges.update(target for target in targets if target in modules and target != name)
        # A package's __init__ re-exports its modules; importing the package is not a cycle by itself.
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_checker_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_two_known_circles_stay_cut() -> None:
    graph = _graph()
    assert "bot.config" not in graph["bot.sharding"]
    assert "bot.store.engine" not in graph["bot.store.batching"]


def test_no_module_cycles_in_the_lower_layers() -> None:
    lower = ("bot.audio", "bot.mistral", "bot.store", "bot.limits", "bot.config", "bot.sharding")
    graph = {name: {e for e in edges if e.startswith(lower)} for name, edges in _graph().items()
             if name.startswith(lower)}
    # Package __init__ modules import their children, and children import siblings through the
    # package; only cycles between plain modules count.
    plain = {name: {e for e in edges if not _is_package(e)} for name, edges in graph.items() if not _is_package(name)}
    assert _cycles(plain) == []


def _is_package(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").exists()
