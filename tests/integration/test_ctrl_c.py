"""Ctrl-C on ``make run`` ends cleanly: the server drains, make exits 0, no traceback.

A real terminal is needed for Ctrl-C to mean anything: the test runs make on a pseudo
terminal (``terminal.Terminal``) and types Ctrl-C into it, so the kernel sends SIGINT to the
terminal's foreground process group, exactly as in a shell. The Makefile used mirrors the
real ``run`` recipe (the real one would first run ``make setup``); that the real recipe goes
through ``scripts/foreground.py`` is checked separately.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from tests.integration.harness import ROOT, free_port
from tests.integration.terminal import Terminal


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
    terminal = Terminal(["make", "--no-print-directory", "run"], cwd=tmp_path, env=env)
    try:
        assert terminal.wait_for("Application startup complete", 60), terminal.output
        terminal.ctrl_c()  # as typed
        status = terminal.wait(30)
    finally:
        terminal.close()
    text = terminal.output
    assert os.WIFEXITED(status), f"make ended by a signal: {status}\n{text}"
    assert os.WEXITSTATUS(status) == 0, text
    assert "drained" in text
    assert "Traceback" not in text
    assert "Interrupt" not in text
