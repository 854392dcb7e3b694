"""``scripts/generate_python_client.py``: deterministic, and what it derives from the document.

The committed ``models.py`` and ``channels.py`` must be exactly what the generator writes now
(``scripts/check_generated.py`` checks the same against git); and a channel family added to
the document must get its ``subscribe_<family>`` method with no hand edit.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.integration.harness import ROOT

SCRIPT = ROOT / "scripts" / "generate_python_client.py"
PACKAGE = ROOT / "clients" / "python" / "src" / "marketcast_client"
GENERATED = ("models.py", "channels.py")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_python_client", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_generator_reproduces_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    runs = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        subprocess.run(
            [sys.executable, str(SCRIPT), "--output-dir", str(out)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        runs.append({name: (out / name).read_bytes() for name in GENERATED})
    assert runs[0] == runs[1]
    for name in GENERATED:
        assert runs[0][name] == (PACKAGE / name).read_bytes(), (
            f"{name} differs from the generator's output: run scripts/generate_python_client.py"
        )


def _with_ticks_family(document: dict[str, Any]) -> dict[str, Any]:
    """The document plus a ``ticks`` family shaped like ``quotes`` (renamed throughout)."""
    text = json.dumps(document["components"])
    document = copy.deepcopy(document)
    renamed = json.loads(text.replace("Quotes", "Ticks").replace("quotes", "ticks"))
    for section in ("schemas", "messages"):
        for name, value in renamed[section].items():
            if name.startswith("Ticks"):
                document["components"][section][name] = value
    schemas = document["components"]["schemas"]
    for union in ("ClientMessage", "ServerMessage"):
        members = schemas[union]["oneOf"]
        quotes = [member["$ref"] for member in members if "/Quotes" in member["$ref"]]
        members += [{"$ref": ref.replace("Quotes", "Ticks")} for ref in quotes]
    channel = json.loads(json.dumps(document["channels"]["quotes"]).replace("Quotes", "Ticks"))
    document["channels"]["ticks"] = channel
    return document


def test_a_new_channel_family_gets_its_subscribe_method() -> None:
    generator = _generator()
    document = json.loads((ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8"))
    channels = generator.render_channels(_with_ticks_family(document))
    assert "async def subscribe_ticks(self, symbol: str) -> TicksSubscription:" in channels
    assert 'update_type="ticks.update"' in channels
    assert '"ticks": TICKS' in channels
    models = generator.render_models(_with_ticks_family(document))
    assert "class TicksUpdatePayload(ServerModel):" in models
    assert 'type: Literal["ticks.subscribe"] = "ticks.subscribe"' in models
