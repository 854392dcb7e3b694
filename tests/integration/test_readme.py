"""The README's quick start, run as written in a fresh clone of this repository.

A new user copies the README's commands into a terminal in a new clone; so does this test.
The commands are read from the README itself (a command edited there is a command tested
here), with one change: port 8000 becomes a free port, so the test cannot collide with
anything listening on this machine. ``make run`` sets itself up in the clone (uv, the venv,
the Node packages, the demo build, from the local caches), then the curl and WebSocket
examples run against it, then the README's ``uv tool install`` line; last, Ctrl-C typed on
``make run``'s terminal must end it with exit status 0.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import ROOT, free_port
from tests.integration.terminal import Terminal

pytestmark = pytest.mark.integration

README = ROOT / "README.md"


def shell_blocks(text: str) -> list[list[str]]:
    """The lines of every ```sh block, in order."""
    return [block.splitlines() for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL)]


def command_starting(blocks: list[list[str]], prefix: str) -> str:
    """The README's command line that starts with ``prefix``, minus a trailing comment."""
    for block in blocks:
        for line in block:
            if line.startswith(prefix):
                return line.split("  #", 1)[0].strip()
    raise AssertionError(f"the README has no command starting with {prefix!r}")


def at_port(command: str, port: int) -> str:
    return command.replace("127.0.0.1:8000", f"127.0.0.1:{port}")


def test_readme_quick_start_runs_in_a_fresh_clone(tmp_path: Path) -> None:
    blocks = shell_blocks(README.read_text())
    run = command_starting(blocks, "MARKETCAST_PORT=")  # the port override example
    curl = command_starting(blocks, "curl ")
    websocket = command_starting(blocks, ".venv/bin/python -m websockets ")
    typed = next(line[2:] for block in blocks for line in block if line.startswith("> "))
    install = command_starting(blocks, "uv tool install ")
    assert run.endswith("make run"), run

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETCAST_", "VIRTUAL_ENV"))}
    # On a terminal of its own, so that Ctrl-C at the end is what a user's Ctrl-C is.
    terminal = Terminal(
        ["bash", "-c", run.replace("MARKETCAST_PORT=9000", f"MARKETCAST_PORT={port}")],
        cwd=clone,
        env=env,
    )
    try:
        _wait_ready(port, terminal, within=300)

        answer = subprocess.run(
            ["bash", "-c", at_port(curl, port)],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert '"bars":[' in answer.stdout, answer.stdout

        # Typed into the interactive client, which prints what the server answers; stdin
        # stays open until the answer came (at its end the client closes the connection).
        session = Terminal(["bash", "-c", at_port(websocket, port)], cwd=clone, env=env)
        try:
            assert session.wait_for("Connected to", 60), session.output
            session.type(typed + "\n")
            assert session.wait_for('"bars.subscribe.response"', 30), session.output
            assert '"status": "ok"' in session.output.replace('":"', '": "'), session.output
        finally:
            session.close()

        _install_as_a_tool(install, clone, env, tmp_path)
        terminal.ctrl_c()
        status = terminal.wait(60)
    finally:
        terminal.close()
    text = terminal.output
    assert os.WIFEXITED(status), text[-3000:]
    assert os.WEXITSTATUS(status) == 0, text[-3000:]
    assert "Traceback" not in text
    assert "drained" in text


def _wait_ready(port: int, terminal: Terminal, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if os.waitpid(terminal.pid, os.WNOHANG)[0]:
            pytest.fail(f"make run exited early:\n{terminal.output[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"make run was not ready within {within} s:\n{terminal.output[-3000:]}")


def _install_as_a_tool(command: str, clone: Path, env: dict[str, str], tmp: Path) -> None:
    """The README's ``uv tool install`` line, into this test's own tool directory."""
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        pytest.fail("uv is not installed, though `make run` installs it")
    tools = {"UV_TOOL_DIR": str(tmp / "tools"), "UV_TOOL_BIN_DIR": str(tmp / "bin")}
    argv = shlex.split(command.split("#", 1)[0])
    subprocess.run([uv, *argv[1:]], cwd=clone, env={**env, **tools}, check=True, timeout=300)
    shown = subprocess.run(
        [str(tmp / "bin" / "marketcast"), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "MARKETCAST_PORT" in shown.stdout
