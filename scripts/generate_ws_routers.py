"""Render the generic WebSocket router template into one concrete router per route.

Usage: ``python scripts/generate_ws_routers.py``. The spec list below is the only place where
routes differ from each other; ``scripts/check_generated.py`` compares the output with git.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "backend" / "marketcast" / "ws" / "generic.py.j2"
OUTPUT_DIR = ROOT / "backend" / "marketcast" / "ws" / "generated"


@dataclass(frozen=True)
class RouterSpec:
    route: str
    description: str
    subscribe_payload: str
    subscribe_response: str
    unsubscribe_payload: str
    unsubscribe_response: str
    update_payload: str
    subscribe_summary: str
    subscribe_description: str
    update_noun: str
    update_summary: str
    update_description: str
    #: Whether subscribe can return bars (``snapshot`` / ``since``).
    has_history: bool


SPECS = [
    RouterSpec(
        route="bars",
        description="live candles per symbol and resolution, with snapshots.",
        subscribe_payload="BarsSubscribePayload",
        subscribe_response="BarsSubscribeResponsePayload",
        unsubscribe_payload="BarsUnsubscribePayload",
        unsubscribe_response="BarsUnsubscribeResponsePayload",
        update_payload="BarsUpdatePayload",
        subscribe_summary="Receive a symbol's candles at one resolution, after a snapshot.",
        subscribe_description="Subscribe to the topic of (symbol, resolution); with "
        "``snapshot`` or ``since`` the reply carries bars, continuous with the stream.",
        update_noun="candles",
        update_summary="A candle changed or closed.",
        update_description="Sent for every change of the open bar and once more, with "
        "``closed`` true, when the bar is final.",
        has_history=True,
    ),
    RouterSpec(
        route="quotes",
        description="live quotes (bid, ask, last) per symbol.",
        subscribe_payload="QuotesSubscribePayload",
        subscribe_response="QuotesSubscribeResponsePayload",
        unsubscribe_payload="QuotesUnsubscribePayload",
        unsubscribe_response="QuotesUnsubscribeResponsePayload",
        update_payload="QuotesUpdatePayload",
        subscribe_summary="Receive a symbol's quotes.",
        subscribe_description="Subscribe to the topic of a symbol's quotes.",
        update_noun="quotes",
        update_summary="A new quote.",
        update_description="Sent on every quote change of the symbol.",
        has_history=False,
    ),
]


def render_all() -> dict[Path, str]:
    """Every generated file and its exact contents, formatted as committed."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    template = environment.get_template(TEMPLATE.name)
    outputs = {
        OUTPUT_DIR / f"{spec.route}.py": template.render(spec=asdict(spec)) for spec in SPECS
    }
    outputs[OUTPUT_DIR / "__init__.py"] = (
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
    argparse.ArgumentParser(description=__doc__).parse_args()
    for path, text in render_all().items():
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
