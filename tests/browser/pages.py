"""Runs ``pages_driver.mjs``: open pages in headless Chromium with non-local requests blocked."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import ROOT

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path(__file__).with_name("pages_driver.mjs")


def open_pages(pages: list[dict[str, Any]], profile: Path) -> dict[str, Any]:
    """The driver's report: ``results`` per page, ``local`` and ``blocked`` request URLs."""
    if not CHROMIUM.exists() or shutil.which("node") is None:
        pytest.fail("Debian's chromium and node are needed: run `make setup`")
    if not (ROOT / "frontend-types/node_modules/playwright-core").is_dir():
        pytest.fail("playwright-core is not installed: run `make setup`")
    config = {"pages": pages, "profile": str(profile), "timeoutMs": 30_000}
    done = subprocess.run(
        ["node", str(DRIVER), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report
