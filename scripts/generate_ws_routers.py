"""Render the generic WebSocket router template into one concrete router per route.

Usage: ``python scripts/generate_ws_routers.py [--channels module:function] [--output DIR]``.
Every router comes from a family's declaration in the channel registry (``marketcast.channels``),
the only place where routes differ from each other; ``scripts/check_generated.py`` compares the
output with git. ``--channels`` renders another registry (a test's throwaway family) elsewhere.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2

from marketcast.channels.base import Family, History, Registry

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "backend" / "marketcast" / "ws" / "generic.py.j2"
OUTPUT_DIR = ROOT / "backend" / "marketcast" / "ws" / "generated"


#: Where the registry comes from unless ``--channels`` says otherwise.
DEFAULT_CHANNELS = "marketcast.channels.registry:default_registry"


def load_registry(reference: str = DEFAULT_CHANNELS) -> Registry:
    """The registry a ``module:function`` reference builds (a test passes its own)."""
    module_name, _, function = reference.partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    registry = factory()
    if not isinstance(registry, Registry):
        raise TypeError(f"{reference} returned {type(registry).__name__}, expected a Registry")
    return registry


def family_values(family: Family) -> dict[str, Any]:
    """What the template reads of one family: its declaration, flattened to names and text."""
    models, docs = family.models, family.docs
    return {
        "route": family.route,
        "description": docs.description,
        "models_module": family.models_module or type(family).__module__,
        "subscribe": models.subscribe.__name__,
        "subscribe_response": models.subscribe_response.__name__,
        "unsubscribe": models.unsubscribe.__name__,
        "unsubscribe_response": models.unsubscribe_response.__name__,
        "update_payload": models.update.__name__,
        "item": models.item.__name__ if models.item is not None else None,
        "item_module": models.item.__module__ if models.item is not None else None,
        "snapshot_field": family.snapshot_field,
        "state": family.history is History.STATE,
        "snapshot": "snapshot" in models.subscribe.model_fields,
        "since": "since" in models.subscribe.model_fields,
        "subscribe_summary": docs.subscribe_summary,
        "subscribe_description": docs.subscribe_description,
        "update_noun": docs.update_noun,
        "update_summary": docs.update_summary,
        "update_description": docs.update_description,
    }


def render_all(registry: Registry | None = None, output: Path = OUTPUT_DIR) -> dict[Path, str]:
    """Every generated file and its exact contents, formatted as committed."""
    registry = registry if registry is not None else load_registry()
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    template = environment.get_template(TEMPLATE.name)
    outputs = {
        output / f"{family.route}.py": template.render(f=family_values(family))
        for family in registry
    }
    outputs[output / "__init__.py"] = (
        '"""Routers rendered from ``ws/generic.py.j2`` — generated, do not edit."""\n'
    )
    return {path: _ruff_format(text, path) for path, text in outputs.items()}


def _ruff_format(text: str, path: Path) -> str:
    """Sort imports and format with the project's ruff, as hand-written modules are."""
    ruff = [sys.executable, "-m", "ruff"]
    stdin = ["--stdin-filename", str(path), "-"]
    for command in (
        [*ruff, "check", "--fix-only", "--select", "I", *stdin],
        [*ruff, "format", *stdin],
    ):
        text = subprocess.run(
            command, input=text, capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channels", default=DEFAULT_CHANNELS, help="module:function")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args()
    for path, text in render_all(load_registry(args.channels), args.output).items():
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
