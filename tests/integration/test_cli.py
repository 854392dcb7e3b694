"""``marketcast`` on the command line: help, and the one-line errors of issue 7 (acceptance 3):
a wrong setting names the ``MARKETCAST_`` variable and exits 2; a taken port names the address
and exits 1 — both before the server starts anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import free_port, run_server


def marketcast(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETCAST_")}
    env.update({f"MARKETCAST_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "marketcast.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("setting", "value"),
    [("port", "eighty"), ("log_level", "loud"), ("log_format", "xml"), ("sim_speed", "-1")],
)
def test_wrong_setting_is_one_line_naming_it(setting: str, value: str) -> None:
    result = marketcast("serve", **({"port": str(free_port())} | {setting: value}))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"marketcast: invalid setting MARKETCAST_{setting.upper()}: ")
    assert repr(value) in lines[0]
    assert result.stdout == ""


def test_taken_port_is_one_line_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = marketcast("serve", port=str(port))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("marketcast: ")]
    assert errors == [
        f"marketcast: cannot listen on 127.0.0.1:{port}: address already in use; another "
        "process listens there: stop it, or choose another port with --port or MARKETCAST_PORT"
    ]
    assert "Traceback" not in result.stderr
    # Nothing started: no feed, no uvicorn.
    assert "simulator started" not in result.stderr
    assert "uvicorn" not in result.stderr


def test_help_explains_every_option() -> None:
    top = marketcast("--help")
    assert top.returncode == 0
    for command in ("serve", "export-asyncapi", "fake-upstreams"):
        assert command in top.stdout
    serve = marketcast("serve", "--help")
    assert serve.returncode == 0
    for option, variable in [
        ("--host", "MARKETCAST_HOST"),
        ("--port", "MARKETCAST_PORT"),
        ("--log-level", "MARKETCAST_LOG_LEVEL"),
        ("--log-format", "MARKETCAST_LOG_FORMAT"),
    ]:
        assert option in serve.stdout
        assert variable in serve.stdout
    assert "Exit status" in serve.stdout
    export = marketcast("export-asyncapi", "--help")
    assert export.returncode == 0
    assert "--output" in export.stdout


def test_export_asyncapi_writes_the_document() -> None:
    result = marketcast("export-asyncapi")
    assert result.returncode == 0, result.stderr
    assert '"asyncapi": "2.6.0"' in result.stdout


@pytest.mark.parametrize(
    ("setting", "loop_class"),
    [("auto", "uvloop.Loop"), ("uvloop", "uvloop.Loop"), ("asyncio", "asyncio.unix_events")],
)
def test_serve_runs_on_the_configured_event_loop(
    tmp_path: Path, setting: str, loop_class: str
) -> None:
    """``MARKETCAST_EVENT_LOOP``: ``auto`` picks uvloop (a dependency here), and the ready
    line names the loop the server actually runs on."""
    with run_server(tmp_path, event_loop=setting) as server:
        ready = [line for line in server.log().splitlines() if "marketcast ready:" in line]
    assert len(ready) == 1, server.log()
    assert f"event loop {loop_class}" in ready[0]
