"""Regenerate every generated file, then fail if any differs from what git has committed.

Comparing with git (not only with the working tree) is the point: editing the router template
and regenerating is not enough, the regenerated files must be committed with it, or CI — which
runs this on a clean checkout — would build something other than what was reviewed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Each generator, run from the repository root, in order: the last two read what
#: generate_asyncapi.py wrote.
GENERATORS = [
    [sys.executable, "scripts/generate_ws_routers.py"],
    [sys.executable, "scripts/generate_asyncapi.py"],
    ["node", "scripts/generate_ws_types.mjs"],
    [sys.executable, "scripts/generate_python_client.py"],
]
#: What the generators write; tracked in git.
GENERATED = [
    "backend/marketcast/ws/generated",
    "docs/asyncapi.json",
    "docs/asyncapi-3.json",
    "frontend-types/src/generated",
    "clients/python/src/marketcast_client/models.py",
    "clients/python/src/marketcast_client/channels.py",
]


def main() -> int:
    for command in GENERATORS:
        subprocess.run(command, cwd=ROOT, check=True)
    diff = subprocess.run(
        ["git", "diff", "--stat", "--exit-code", "HEAD", "--", *GENERATED], cwd=ROOT
    )
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "--", *GENERATED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if diff.returncode != 0 or untracked:
        for path in untracked:
            print(f"untracked generated file: {path}")
        print("generated files differ from the committed ones: commit them (make generate)")
        return 1
    print("generated files are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
