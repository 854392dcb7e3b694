"""Write ``docs/asyncapi.json``, the committed snapshot of the WebSocket contract, and
``docs/asyncapi-3.json``, the same contract restated as AsyncAPI 3.0 (``ws.spec3``).

Usage: ``python scripts/generate_asyncapi.py [--channels module:function] [--output FILE]
[--output3 FILE]``; ``--output3`` defaults to ``-3.json`` beside ``--output``, so a document
written elsewhere never overwrites the committed 3.0 one.
The document is the contract, built without settings (``app.build_spec``): its server is a
variable and its limits are named, not stated, so that it only changes when the code does.
``scripts/check_generated.py`` compares the result with git. ``--channels`` documents another
registry (a test's throwaway family).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from generate_ws_routers import DEFAULT_CHANNELS, load_registry

from marketcast.channels.base import Registry
from marketcast.ws.spec3 import asyncapi3

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "asyncapi.json"


def render(channels: Registry | None = None) -> str:
    # The app is built only for its routes; its settings must not need the environment.
    for name in [n for n in os.environ if n.startswith("MARKETCAST_")]:
        del os.environ[name]
    from marketcast.app import build_spec, create_app
    from marketcast.channels.registry import default_registry
    from marketcast.settings import Settings

    registry = channels or default_registry()
    app = create_app(Settings(_env_file=None), channels=registry)
    document = build_spec(app.state.adapter, registry)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channels", default=DEFAULT_CHANNELS, help="module:function")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--output3", type=Path, help="the AsyncAPI 3.0 file")
    args = parser.parse_args()
    output: Path = args.output
    text = render(load_registry(args.channels))
    _write(output, text)
    # Converted from the very document just written, so the two cannot tell different stories.
    converted = asyncapi3(json.loads(text))
    output3: Path = args.output3 or output.with_name(f"{output.stem}-3{output.suffix}")
    _write(output3, json.dumps(converted, indent=2, ensure_ascii=False) + "\n")
    return 0


def _write(output: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (its timestamp then stays)."""
    if output.exists() and output.read_text() == text:
        return
    output.write_text(text)
    print(f"wrote {output}")


if __name__ == "__main__":
    raise SystemExit(main())
