"""What a user does: ``pip install ./clients/python`` into a fresh venv, then type-check and
run the example against a real server.

Plain ``pip install <path>``, build isolation included: pip fetches hatchling from the index
itself. The venv must end up without the server's stack (FastAPI, fastws, uvicorn, Starlette),
and ``mypy --strict`` must accept typed user code (``examples/live_bars.py``) with only the
installed package to go by, so no ``constr()``-style annotation may leak into the models.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import ROOT, run_server

pytestmark = pytest.mark.integration

PACKAGE = ROOT / "clients" / "python"
EXAMPLE = PACKAGE / "examples" / "live_bars.py"
SERVER_STACK = {"fastapi", "fastws", "uvicorn", "starlette", "marketcast"}


def _run(*command: str | Path, cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "MYPYPATH"}}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_pip_install_into_a_fresh_venv_then_mypy_strict_and_run(tmp_path: Path) -> None:
    python3 = shutil.which("python3") or sys.executable
    venv = tmp_path / "venv"
    _run(python3, "-m", "venv", venv, cwd=tmp_path)
    pip = venv / "bin" / "pip"
    # A copy, so that pip's build leaves nothing behind in the repository.
    source = tmp_path / "marketcast-client"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    _run(pip, "install", "--quiet", source, cwd=tmp_path)

    listed = json.loads(_run(pip, "list", "--format", "json", cwd=tmp_path))
    installed = {item["name"].lower() for item in listed}
    assert "marketcast-client" in installed
    assert {"websockets", "pydantic"} <= installed
    assert not installed & SERVER_STACK, sorted(installed & SERVER_STACK)

    # mypy from the project's venv, reading imports from the fresh venv's interpreter only.
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\n", encoding="utf-8")
    script = tmp_path / "live_bars.py"
    shutil.copyfile(EXAMPLE, script)
    checked = _run(
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        config,
        "--cache-dir",
        tmp_path / "cache",
        "--python-executable",
        venv / "bin" / "python",
        script,
        cwd=tmp_path,
    )
    assert "Success: no issues found in 1 source file" in checked

    # And it runs: history first, then live closed bars, from the installed package.
    with run_server(tmp_path, sim_speed=60, sim_tick_interval=0.05) as server:
        output = _run(
            venv / "bin" / "python", script, server.ws, "--closed", "2", cwd=tmp_path, timeout=60
        )
    lines = output.splitlines()
    assert [line.split()[0] for line in lines] == ["history"] * 3 + ["closed"] * 2, output
