"""The ``marketcast`` command: ``serve``, ``export-asyncapi`` and ``fake-upstreams``.

A wrong setting ends the command with one line naming the setting and exit status 2, never a
traceback: operators read this first when a deployment does not start. A port that cannot be
bound (taken, privileged) ends it with one line naming the address and exit status 1, before
anything else has started (``marketcast.listener``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from marketcast.errors import ConfigurationError
from marketcast.listener import ListenError, bind_listener, display_address
from marketcast.settings import Settings
from marketcast.sim.cli import add_parser as add_fake_upstreams

log = logging.getLogger("marketcast.cli")


def _settings(overrides: dict[str, Any]) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problem = exc.errors()[0]
        name = "MARKETCAST_" + str(problem["loc"][0]).upper() if problem["loc"] else "settings"
        raise ConfigurationError(
            f"invalid setting {name}: {problem['msg']} (got {problem.get('input')!r})"
        ) from None


def _serve(args: argparse.Namespace) -> int:
    # Settings first: a wrong one is reported before the (slow) imports of the whole server.
    settings = _settings(
        {
            "host": args.host,
            "port": args.port,
            "log_level": args.log_level,
            "log_format": args.log_format,
        }
    )
    from marketcast.app import create_app
    from marketcast.logs import configure_logging
    from marketcast.serving import build_server

    configure_logging(settings)
    log.info("starting: store %s, bus %s", _scheme(settings.store_url), _scheme(settings.bus_url))
    app = create_app(settings)  # builds, starts nothing: the lifespan does, once listening
    listener = bind_listener(settings.host, settings.port)
    address = display_address(settings.host, listener.getsockname()[1])
    # uvicorn settings (frame size, pings) and the drain on SIGTERM: marketcast.serving.
    server = build_server(app, settings)
    # Again: building uvicorn's Config installed its own handlers; route them through ours.
    configure_logging(settings)
    log.info(
        "listening on http://%s: demo page /, WebSocket /api/v1/ws, AsyncAPI docs "
        "/api/v1/ws/asyncapi, metrics /metrics",
        address,
    )
    server.run(sockets=[listener])
    return 0 if server.started else 1


def _scheme(url: str) -> str:
    """Only the scheme of a store or bus URL: the rest may carry a password."""
    return url.split("://", 1)[0] + "://" if "://" in url else "?"


def _export_asyncapi(args: argparse.Namespace) -> int:
    from marketcast.app import create_app

    app = create_app(_settings({}))
    document = app.state.adapter.asyncapi()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="marketcast",
        description="Real-time market-data API: candles and quotes over WebSocket and REST.",
        epilog="Every setting is also a MARKETCAST_* environment variable (or a line in ./.env); "
        "an option given here wins over the variable. A wrong setting exits with status 2.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the server: the demo page at /, the WebSocket API at /api/v1/ws, "
        "REST under /api/v1/market-data, metrics at /metrics. By default the simulator feeds "
        "every symbol, with an in-memory store: no services, no network. SIGTERM or Ctrl-C "
        "drains connections (notice, flush, close 1001) before stopping; a second one stops "
        "at once.",
        epilog="Exit status: 0 after a clean stop (SIGTERM and Ctrl-C included), 1 when the "
        "address cannot be bound or the server fails to start, 2 for a wrong setting, 130 "
        "when interrupted before the server started.",
    )
    serve.add_argument(
        "--host", help="interface to listen on (MARKETCAST_HOST; default 127.0.0.1, local only)"
    )
    serve.add_argument("--port", type=int, help="TCP port (MARKETCAST_PORT; default 8000)")
    serve.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="least severe level logged (MARKETCAST_LOG_LEVEL; default info: one line per "
        "connection open and close, per stream start and stop, per upstream state change)",
    )
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text lines or one JSON object per line (MARKETCAST_LOG_FORMAT; default text); "
        "secrets are redacted in both",
    )
    serve.set_defaults(run=_serve)
    export = commands.add_parser(
        "export-asyncapi",
        help="write the AsyncAPI document",
        description="Write the AsyncAPI 2.6 document of the WebSocket API, as the server "
        "would serve it at /api/v1/ws/asyncapi.json with the current settings.",
    )
    export.add_argument(
        "-o", "--output", default="-", help="file to write, or - for stdout (default)"
    )
    export.set_defaults(run=_export_asyncapi)
    add_fake_upstreams(commands)  # ``fake-upstreams``: marketcast.sim.cli
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigurationError as exc:
        print(f"marketcast: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"marketcast: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C before the server installed its own handlers (while starting): no
        # traceback, the shell's usual status for SIGINT.
        print("marketcast: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
