"""bench/ runs as ``python -m bench...`` from the repository root against the installed project:
it may import bot/, cogs/, tests/fakes/, tests/services.py and itself, and must not edit sys.path to reach more."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
# tests.services: the real PostgreSQL and Redis starters, for `bench.scaling --processes N`.
ALLOWED = ("bot", "cogs", "tests.fakes", "tests.services", "bench")


def _project_imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return [name for name in names if name.split(".")[0] in {"bot", "cogs", "tests", "bench"}]


def test_bench_imports_only_the_product_and_the_fakes() -> None:
    wrong = {
        f"{path.name}: {name}"
        for path in BENCH.glob("*.py")
        for name in _project_imports(ast.parse(path.read_text()))
        if not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)
    }
    assert wrong == set()


def test_bench_never_edits_sys_path() -> None:
    edits = [path.name for path in BENCH.glob("*.py")
             if "sys.path" in path.read_text() or "PYTHONPATH" in path.read_text()]
    assert edits == []
