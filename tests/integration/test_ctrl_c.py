"""Ctrl-C on ``make run`` ends cleanly: the server drains, make exits 0, no traceback.

A real terminal is needed for Ctrl-C to mean anything: the test runs make under a pseudo
terminal (``pty.fork``: make is a session leader with the pty as its controlling terminal)
and types Ctrl-C (byte 0x03) into it, so the kernel's line discipline sends SIGINT to the
terminal's foreground process group, exactly as in a shell. The Makefile used mirrors the
real ``run`` recipe (the real one would first run ``make setup``); that the real recipe goes
through ``scripts/foreground.py`` is checked separately.
"""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

from tests.integration.harness import ROOT, free_port


def _read_until(fd: int, pattern: bytes, seen: bytearray, within: float) -> bool:
    """Read the pty into ``seen`` until ``pattern`` shows up (True) or ``within`` ends."""
    deadline = time.monotonic() + within
    while pattern not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: every process on the terminal has closed it
            return pattern in seen
        if not chunk:
            return pattern in seen
        seen += chunk
    return True


def test_real_run_recipe_takes_the_terminal() -> None:
    recipe = re.search(r"^run:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe is not None
    assert "scripts/foreground.py marketcast serve" in recipe.group(1)


def test_ctrl_c_on_make_run_exits_0_without_a_traceback(tmp_path: Path) -> None:
    makefile = tmp_path / "Makefile"
    makefile.write_text(
        f"run:\n\t{sys.executable} {ROOT / 'scripts/foreground.py'} "
        f"{sys.executable} -m marketcast.cli serve\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETCAST_")}
    env |= {"MARKETCAST_PORT": str(free_port()), "MARKETCAST_HOST": "127.0.0.1"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: make, on the pty
        os.chdir(tmp_path)
        os.execvpe("make", ["make", "--no-print-directory", "run"], env)
    seen = bytearray()
    status: int | None = None
    try:
        assert _read_until(fd, b"Application startup complete", seen, 60), seen.decode()
        os.write(fd, b"\x03")  # Ctrl-C, as typed
        _read_until(fd, b"\x00never", seen, 30)  # everything, until make closes the pty
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:  # not reaped yet: the pid is still ours to kill
            os.killpg(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    text = seen.decode(errors="replace")
    assert os.WIFEXITED(status), f"make ended by a signal: {status}\n{text}"
    assert os.WEXITSTATUS(status) == 0, text
    assert "drained" in text
    assert "Traceback" not in text
    assert "Interrupt" not in text
