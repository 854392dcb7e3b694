"""Route names appear as string literals in ``backend/`` only in their family's declaration
and in generated files (issue 12): everything else reads the channel registry.

A literal counts when it *is* a route, or starts a message type or topic of one
(``"bars.update"``, ``'bars:{...}'``), or names one in a path (``/stream/bars/``). Docstrings
are prose and do not count; f-string parts are checked like any other literal.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from marketcast.channels.registry import default_registry

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "backend" / "marketcast"
ROUTES = default_registry().routes


def _allowed(path: Path, route: str, package: Path) -> bool:
    relative = path.relative_to(package).as_posix()
    return relative == f"channels/{route}.py" or relative.startswith("ws/generated/")


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _pattern(route: str) -> re.Pattern[str]:
    escaped = re.escape(route)
    return re.compile(rf"^{escaped}$|^{escaped}[.:]|/{escaped}/|/{escaped}$")


def literal_uses(package: Path = PACKAGE) -> list[str]:
    uses: list[str] = []
    patterns = {route: _pattern(route) for route in ROUTES}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if id(node) in skip:
                continue
            for route, pattern in patterns.items():
                if pattern.search(node.value) and not _allowed(path, route, package):
                    where = f"{path.relative_to(package)}:{node.lineno}"
                    uses.append(f"{where}: {node.value[:60]!r}")
    return uses


def test_route_names_live_only_in_their_declaration() -> None:
    assert literal_uses() == []


def test_the_check_sees_a_literal_outside_a_declaration(tmp_path: Path) -> None:
    """The scan is not vacuous: a branch on a route name outside its declaration is found,
    the same text inside the declaration or in a docstring is not."""
    route = ROUTES[0]
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / f"{route}.py").write_text(f'ROUTE = "{route}"\n')
    (tmp_path / "streams.py").write_text(
        f'"""Mentions {route}.update in prose."""\n'
        f'def f(route: str) -> bool:\n    return route == "{route}"\n'
        f'TYPE = f"{{0}}{route}.update"\n'
    )
    found = sorted(literal_uses(tmp_path))
    assert found == [f"streams.py:3: '{route}'", f"streams.py:4: '{route}.update'"]
