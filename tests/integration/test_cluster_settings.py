"""The server refuses cluster settings it cannot use with one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_server_refuses_to_start_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETCAST_")}
    env["MARKETCAST_STORE_URL"] = "mongodb://x"
    result = subprocess.run(
        [sys.executable, "-m", "marketcast.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "marketcast: MARKETCAST_STORE_URL has an unknown scheme (mongodb://…): expected "
        "memory:// or redis://host:port/db"
    )
