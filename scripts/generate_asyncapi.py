"""Write ``docs/asyncapi.json``, the committed snapshot of the WebSocket contract.

Usage: ``python scripts/generate_asyncapi.py``. The document is built with default settings
(the environment's ``MARKETCAST_*`` variables are ignored) so that it only changes when the
code does. ``scripts/check_generated.py`` compares the result with git.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "asyncapi.json"


def render() -> str:
    for name in [n for n in os.environ if n.startswith("MARKETCAST_")]:
        del os.environ[name]
    from marketcast.app import create_app
    from marketcast.settings import Settings

    app = create_app(Settings(_env_file=None))
    document = app.state.adapter.asyncapi()
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()
    text = render()
    if OUTPUT.exists() and OUTPUT.read_text() == text:
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
