"""The ``marketcast`` command: ``serve`` and ``export-asyncapi``.

A wrong setting ends the command with one line naming the setting and exit status 2, never a
traceback: operators read this first when a deployment does not start.
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
from marketcast.settings import Settings


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
    import uvicorn

    from marketcast.app import create_app

    settings = _settings({"host": args.host, "port": args.port, "log_level": args.log_level})
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws="websockets-sansio",
        # Frames larger than this are refused by the protocol layer with close code 1009,
        # before they are read into memory.
        ws_max_size=settings.max_message_bytes,
        # Protocol pings detect dead peers that an idle stream would never notice.
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


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
    parser = argparse.ArgumentParser(prog="marketcast", description="Real-time market-data API.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (settings: MARKETCAST_* variables)")
    serve.add_argument("--host", help="interface to bind (MARKETCAST_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (MARKETCAST_PORT, default 8000)")
    serve.add_argument("--log-level", help="debug, info, warning... (MARKETCAST_LOG_LEVEL)")
    serve.set_defaults(run=_serve)
    export = commands.add_parser("export-asyncapi", help="write the AsyncAPI document")
    export.add_argument("-o", "--output", default="-", help="file to write, - for stdout")
    export.set_defaults(run=_export_asyncapi)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigurationError as exc:
        print(f"marketcast: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
