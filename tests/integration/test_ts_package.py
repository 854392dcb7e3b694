"""frontend-types as an installed npm package (issue 13): ``scripts/check_ts_package.sh`` packs
it, installs the tarball into an empty project, compiles ``frontend-types/examples/consumer.ts``
with ``tsc --strict`` and runs it against a real server; this runs that script in the normal
suite and checks the consumer's summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_ts_package.sh"
#: The script bounds each step itself and takes ~15 s; this is the last resort.
TIMEOUT = 180
CLOSED_BARS = 3


def run_check() -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETCAST_")}
    env["CHECK_TS_CLOSED_BARS"] = str(CLOSED_BARS)
    # A session of its own: on a timeout the whole group (script, npm, server) is stopped,
    # with SIGTERM first so that the script's trap stops the server it started.
    with subprocess.Popen(
        ["bash", str(SCRIPT)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                stdout, stderr = process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                stdout, stderr = process.communicate()
            raise AssertionError(
                f"{SCRIPT.name} took over {TIMEOUT} s\n{stdout}\n{stderr}"
            ) from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_packed_package_installs_compiles_and_runs_against_a_server() -> None:
    result = run_check()
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    summaries = [
        line.removeprefix("consumer summary: ")
        for line in result.stdout.splitlines()
        if line.startswith("consumer summary: ")
    ]
    assert len(summaries) == 1, output
    summary = json.loads(summaries[0])
    assert summary["topic"] == 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
    assert summary["snapshotBars"] == 5
    assert summary["closedBars"] >= CLOSED_BARS
    assert summary["updates"] >= summary["closedBars"]
    assert isinstance(summary["lastClose"], int | float)
    assert summary["lastClose"] > 0
    assert isinstance(summary["pongTime"], int)
    assert summary["states"][0] == "open"
    assert summary["states"][-1] == "closed"
    assert result.stdout.rstrip().endswith("check_ts_package: OK"), output
