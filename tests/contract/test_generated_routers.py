"""The routers are generated from one template, and stale generated files fail the check.

Runs in a throwaway clone of the repository so the real working tree is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "backend/marketcast/ws/generic.py.j2"
ROUTERS = ["backend/marketcast/ws/generated/bars.py", "backend/marketcast/ws/generated/quotes.py"]
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]


def _run(clone: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # Import marketcast from the clone, not from the editable install of the real tree.
    env = {**os.environ, "PYTHONPATH": str(clone / "backend")}
    return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True)


def test_routers_are_up_to_date_with_the_template() -> None:
    """What is committed is exactly what the template renders."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, 'scripts');"
            "import generate_ws_routers as g;"
            "sys.exit(any(p.read_text() != t for p, t in g.render_all().items()))",
        ],
        cwd=ROOT,
    )
    assert done.returncode == 0, (
        "generated routers differ from the template: make generate-ws-routers"
    )


def test_template_edit_changes_both_routers_and_check_fails_until_committed(
    tmp_path: Path,
) -> None:
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    # check_generated.py also runs the TypeScript generator, which needs the npm packages.
    node_modules = "frontend-types/node_modules"
    if not (clone / node_modules).exists():  # git-ignored, so never in a clone
        (clone / node_modules).symlink_to(ROOT / node_modules, target_is_directory=True)
    template = clone / TEMPLATE
    marker = "# template-edit-marker"
    text = template.read_text()
    template.write_text(text.replace("ROUTE: Final = ", f"{marker}\nROUTE: Final = ", 1))
    before = {path: (clone / path).read_text() for path in ROUTERS}

    check = _run(clone, sys.executable, "scripts/check_generated.py")
    assert check.returncode == 1, check.stdout + check.stderr
    for path in ROUTERS:
        after = (clone / path).read_text()
        assert after != before[path], f"{path} did not change"
        assert marker in after

    again = _run(clone, sys.executable, "scripts/check_generated.py")
    assert again.returncode == 1, "regenerated but uncommitted files must still fail the check"

    subprocess.run([*GIT, "commit", "--quiet", "-am", "edit template"], cwd=clone, check=True)
    committed = _run(clone, sys.executable, "scripts/check_generated.py")
    assert committed.returncode == 0, committed.stdout + committed.stderr
