"""The "Where things live" table of docs/architecture.md is the layering, so it must be true.

Why a test: the table is what a reader trusts when deciding where new code may reach, and a
prose table drifts the moment an import is added. This reads it and checks every module's
imports (with ``ast``, nothing is imported or run) against it.

The rule, precisely:

- A row's "module" cell names modules by backticked paths under ``backend/marketcast``: a file
  (``streams.py``), a glob (``feeds/binance*.py``) or a package (``feeds/``: every module
  below it). A module is governed by the most specific row naming it: a file beats a glob,
  which beats a package, and a deeper package beats a shallower one. Every module must be
  governed by some row, except a package's ``__init__.py`` that imports nothing of marketcast.
- A row's "imports" cell is a comma-separated list of dotted module names relative to
  ``marketcast`` (``feeds.base``); a package name (``store``) stands for every module in it.
  ``—`` allows nothing and ``everything below`` allows any module.
- A module may import, from marketcast, only what its row's cell allows, plus the modules its
  own row governs. ``import a.b``, ``from a import b`` (``b`` a module or a name) and relative
  imports all count, wherever they are: inside a function, and under ``TYPE_CHECKING`` too,
  since a cycle through type hints is still a cycle.
- The rows, linked by their cells, form no cycle ("arrows point down only"), so the layering
  has an order even where the table is not written in it.
- No module imports itself through others: the table lets a row's modules import each other,
  and this keeps that from hiding a cycle (as ``feeds/binance.py`` and ``binance_link.py`` had).
- ``KNOWN_EXCEPTIONS`` lists the imports that break the layering today and are to be removed
  by issue 12; an entry that is no longer needed fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
import fnmatch
import graphlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "backend" / "marketcast"
DOC = ROOT / "docs" / "architecture.md"
ANYTHING = "everything below"

#: (importer, imported) pairs the table does not allow: layering violations to be removed under
#: issue 12, item 4 ("Fix the structure while this code moves"). Delete an entry with its fix;
#: never add one to make a new import pass.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset(
    {
        # Feeds know nothing of WebSockets, yet take SYMBOL_PATTERN from the wire models; the
        # pattern belongs in a leaf (e.g. ``market``). Not in the review list; found by this test.
        ("feeds.simulator", "protocol"),
        ("feeds.factory", "protocol"),
    }
)


@dataclass(frozen=True)
class Row:
    patterns: tuple[str, ...]
    #: Dotted names the row's modules may import; None: anything.
    allowed: frozenset[str] | None


@cache
def table() -> tuple[Row, ...]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Where things live", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    module_col = header.index("module")
    imports_col = next(i for i, cell in enumerate(header) if cell.startswith("imports"))
    rows = []
    for line in lines[2:]:  # after the header and its |---| line
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        patterns = tuple(re.findall(r"`([^`]+)`", cells[module_col]))
        imports = cells[imports_col].replace("`", "").strip()
        allowed: frozenset[str] | None
        if imports == ANYTHING:
            allowed = None
        elif imports == "—":
            allowed = frozenset()
        else:
            allowed = frozenset(name.strip() for name in imports.split(","))
        rows.append(Row(patterns, allowed))
    return tuple(rows)


@cache
def modules() -> dict[str, Path]:
    """Dotted name relative to ``marketcast`` ("" for the package itself) -> file."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _specificity(pattern: str, path: str) -> tuple[int, int] | None:
    if pattern.endswith("/"):
        return (0, pattern.count("/")) if path.startswith(pattern) else None
    if "*" in pattern:
        return (1, len(pattern)) if fnmatch.fnmatchcase(path, pattern) else None
    return (2, 0) if path == pattern else None


def row_of(module: str) -> Row | None:
    path = modules()[module].relative_to(PACKAGE).as_posix()
    best: tuple[tuple[int, int], Row] | None = None
    for row in table():
        for pattern in row.patterns:
            rank = _specificity(pattern, path)
            if rank is not None and (best is None or rank > best[0]):
                best = (rank, row)
    return None if best is None else best[1]


def imports_of(module: str) -> set[str]:
    """The marketcast modules ``module`` imports, as dotted names relative to ``marketcast``."""
    path = modules()[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
            found |= {name for name in names if name.split(".")[0] == "marketcast"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(["marketcast", *base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != "marketcast":
                continue
            for alias in node.names:  # `from a import b`: module a.b if there is one, else a
                submodule = f"{source}.{alias.name}"
                found.add(submodule if _relative(submodule) in modules() else source)
    return {_relative(name) for name in found}


def _relative(dotted: str) -> str:
    return dotted.removeprefix("marketcast").removeprefix(".")


def _allows(row: Row, imported: str) -> bool:
    if row.allowed is None:
        return True
    if any(imported == name or imported.startswith(name + ".") for name in row.allowed):
        return True
    return row_of(imported) is row


def violations() -> set[tuple[str, str]]:
    found = set()
    for module in modules():
        row = row_of(module)
        for imported in imports_of(module):
            if row is None or not _allows(row, imported):
                found.add((module, imported))
    return found


def test_the_table_is_found_and_parsed() -> None:
    rows = table()
    assert len(rows) > 20
    assert all(row.patterns for row in rows)
    # An unknown name in a cell is a typo or a module that moved: the row would allow nothing.
    for row in rows:
        for name in row.allowed or ():
            assert _named(name), f"{name!r} in {DOC.name} names no module"


def test_every_module_has_a_row() -> None:
    missing = [
        m
        for m in modules()
        if row_of(m) is None and (imports_of(m) or modules()[m].stem != "__init__")
    ]
    assert not missing, f"modules the table of {DOC.name} does not list: {missing}"


def test_imports_follow_the_table() -> None:
    unexpected = sorted(violations() - KNOWN_EXCEPTIONS)
    assert not unexpected, (
        f"imports the table of {DOC.name} does not allow (fix the import, or the table if "
        f"the layering really changed): {unexpected}"
    )


def test_known_exceptions_are_still_needed() -> None:
    fixed = sorted(KNOWN_EXCEPTIONS - violations())
    assert not fixed, f"no longer imported: delete from KNOWN_EXCEPTIONS: {fixed}"


def test_rows_form_no_cycle() -> None:
    rows = table()
    below: dict[int, set[int]] = {}
    for index, row in enumerate(rows):
        targets = {row_of(m) for name in row.allowed or () for m in _named(name)}
        below[index] = {rows.index(t) for t in targets if t is not None and t is not row}
    try:
        graphlib.TopologicalSorter(below).prepare()
    except graphlib.CycleError as exc:
        cycle = [rows[i].patterns[0] for i in exc.args[1]]
        raise AssertionError(f"rows of {DOC.name} import each other: {cycle}") from None


def _named(name: str) -> list[str]:
    return [m for m in modules() if m == name or m.startswith(name + ".")]


def test_no_import_cycles() -> None:
    graph = {
        module: {i for i in imports_of(module) if (module, i) not in KNOWN_EXCEPTIONS}
        for module in modules()
    }
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
