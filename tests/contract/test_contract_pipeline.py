"""One change to a payload model reaches the spec, the TypeScript types and the Python client.

The pipeline is: protocol.py -> docs/asyncapi.json -> frontend-types/src/generated/messages.ts
and clients/python/src/marketcast_client/models.py. This runs ``scripts/check_generated.py`` in a throwaway clone (so
the real working tree is never touched): after a field is added to a payload model it fails, with
exactly those three generated files changed, each carrying the new field. (That it passes as
committed is what ``make check-generated`` checks in ``make test``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = "backend/marketcast/channels/quotes.py"
SPEC = "docs/asyncapi.json"
SPEC3 = "docs/asyncapi-3.json"
TS_TYPES = "frontend-types/src/generated/messages.ts"
CLIENT_MODELS = "clients/python/src/marketcast_client/models.py"
NODE_MODULES = "frontend-types/node_modules"
PROBE = "contract_probe"


def _run(clone: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # Import marketcast from the clone, not from the editable install of the real tree.
    env = {**os.environ, "PYTHONPATH": str(clone / "backend")}
    env = {k: v for k, v in env.items() if not k.startswith("MARKETCAST_")}
    return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=300)


def _add_field(protocol: Path) -> None:
    """Give ``QuotesUpdatePayload`` one more optional field, right after its docstring."""
    text = protocol.read_text()
    start = text.index("class QuotesUpdatePayload(ServerModel):\n")
    opening = text.index('"""', start)
    closing = text.index('"""\n', opening + 3) + len('"""\n')
    field = f"\n    {PROBE}: int | None = None\n"
    protocol.write_text(text[:closing] + field + text[closing:])


# A clone and every generator in it, each run allowed 300 s: longer than the default.
@pytest.mark.timeout(600)
def test_a_payload_field_change_regenerates_spec_ts_types_and_client_models(
    tmp_path: Path,
) -> None:
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    if not (clone / NODE_MODULES).exists():  # git-ignored, so never in a clone
        (clone / NODE_MODULES).symlink_to(ROOT / NODE_MODULES, target_is_directory=True)

    _add_field(clone / PROTOCOL)
    check = _run(clone, sys.executable, "scripts/check_generated.py")
    assert check.returncode == 1, check.stdout + check.stderr

    changed = _run(clone, "git", "diff", "--name-only").stdout.split()
    assert sorted(changed) == sorted([PROTOCOL, SPEC, SPEC3, TS_TYPES, CLIENT_MODELS])
    assert f'"{PROBE}"' in (clone / SPEC).read_text()
    assert f'"{PROBE}"' in (clone / SPEC3).read_text()
    assert f"{PROBE}?: number | null;" in (clone / TS_TYPES).read_text()
    assert f"{PROBE}: int | None = None" in (clone / CLIENT_MODELS).read_text()

    # The regenerated TypeScript still compiles with the client that uses it.
    tsc = _run(
        clone, str(clone / NODE_MODULES / ".bin" / "tsc"), "-p", "frontend-types", "--noEmit"
    )
    assert tsc.returncode == 0, tsc.stdout + tsc.stderr
