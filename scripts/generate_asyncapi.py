"""Write ``docs/asyncapi.json``, the committed snapshot of the WebSocket contract.

Usage: ``python scripts/generate_asyncapi.py [--channels module:function] [--output FILE]``.
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
    args = parser.parse_args()
    output: Path = args.output
    text = render(load_registry(args.channels))
    if output.exists() and output.read_text() == text:
        return 0
    output.write_text(text)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
