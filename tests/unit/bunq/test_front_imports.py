"""The front and the aggregator meet only in shared modules: neither imports the other (bunq.cli wires both)."""

from __future__ import annotations

import ast
from pathlib import Path

import bunq

ROOT = Path(bunq.__file__).parent
FRONT_ONLY = {
    "bunq.app",
    "bunq.edge",
    "bunq.httpconn",
    "bunq.fastpath",
    "bunq.http",
    "bunq.ws_commands",
    "bunq.routes",
    "bunq.metrics",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module(path: Path) -> str:
    return ".".join(("bunq", *path.relative_to(ROOT).with_suffix("").parts))


def _under(name: str, packages: set[str]) -> bool:
    return any(name == pkg or name.startswith(pkg + ".") for pkg in packages)


def test_the_front_imports_no_aggregator_module() -> None:
    front = [p for p in ROOT.rglob("*.py") if _under(_module(p), FRONT_ONLY)]
    assert front
    for path in front:
        assert not {n for n in _imports(path) if _under(n, {"bunq.aggregator"})}, path


def test_the_aggregator_imports_no_front_module() -> None:
    for path in (ROOT / "aggregator").rglob("*.py"):
        assert not {n for n in _imports(path) if _under(n, FRONT_ONLY)}, path
