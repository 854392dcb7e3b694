"""Write ``tests/consumer/models.py``: pydantic models of the wire, read from the AsyncAPI document.

Usage: ``python scripts/generate_consumer_models.py``. The models are what a Python consumer
of marketcast would generate from the published contract; the integration tests validate every
frame the server sends against them, so the server is checked from the consumer's side and not
against its own ``protocol`` models. ``scripts/check_generated.py`` compares the result with git.

The output is run through ruff with the project's settings (from the repository root), so the
committed file passes ``ruff check`` and ``ruff format --check`` like any other source.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "docs" / "asyncapi.json"
OUTPUT = ROOT / "tests" / "consumer" / "models.py"
HEADER = (
    '"""Generated from docs/asyncapi.json by scripts/generate_consumer_models.py: do not edit.\n'
    "\n"
    "Regenerate with `make generate-consumer-models` after the contract changes.\n"
    '"""'
)
#: The generator's options. Enums become ``Literal`` unions (they compare equal to the JSON
#: strings a consumer reads); ``--disable-timestamp`` keeps the output reproducible.
CODEGEN_OPTIONS = [
    "--input-file-type",
    "asyncapi",
    "--output-model-type",
    "pydantic_v2.BaseModel",
    "--target-python-version",
    "3.11",
    "--use-standard-collections",
    "--use-union-operator",
    "--enum-field-as-literal",
    "all",
    "--use-schema-description",
    "--use-double-quotes",
    "--disable-timestamp",
    "--formatters",
    "builtin",
]


def render() -> str:
    """The formatted module text for the current ``docs/asyncapi.json``."""
    with tempfile.TemporaryDirectory() as scratch:
        draft = Path(scratch) / "models.py"
        _run(
            sys.executable,
            "-m",
            "datamodel_code_generator",
            "--input",
            str(SOURCE),
            "--output",
            str(draft),
            "--custom-file-header",
            HEADER,
            *CODEGEN_OPTIONS,
        )
        text = draft.read_text(encoding="utf-8")
    return _ruff(text)


def _ruff(text: str) -> str:
    """Fix and format ``text`` as if it were ``OUTPUT``: same path, so the same settings.

    ``ruff check --fix`` still fails on what it cannot fix, and so does this generator.
    """
    path = str(OUTPUT.relative_to(ROOT))
    fixed = _run(
        sys.executable,
        "-m",
        "ruff",
        "check",
        "--fix",
        "--quiet",
        "--stdin-filename",
        path,
        "-",
        stdin=text,
    )
    return _run(
        sys.executable,
        "-m",
        "ruff",
        "format",
        "--quiet",
        "--stdin-filename",
        path,
        "-",
        stdin=fixed,
    )


def _run(*command: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        command, cwd=ROOT, input=stdin, capture_output=True, text=True, encoding="utf-8"
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:4])} failed with status {done.returncode}:\n{done.stderr}"
        )
    return done.stdout


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()
    text = render()
    if OUTPUT.exists() and OUTPUT.read_text(encoding="utf-8") == text:
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
