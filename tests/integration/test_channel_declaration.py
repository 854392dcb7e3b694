"""A channel family is one declaration: a family declared in a test (``ticks_family``) goes
through every generator into a temporary tree and is served end to end from a fake source,
without any file of the project naming it.

What is checked, each from the real generator with the test's registry (``--channels``):
the router (``generate_ws_routers``), the AsyncAPI document (``generate_asyncapi``), the
TypeScript types (``generate_ws_types.mjs``, compiled with ``tsc --strict``, a typo refused),
the Python client's models and subscribe methods (``generate_python_client``); then a real
server built by ``create_app(channels=..., feeds=...)`` serves ``ticks.subscribe`` and
``ticks.update`` frames that validate against the rendered document, and its raw stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from websockets.asyncio.client import connect

from marketcast.ws.spec import message_name
from tests.integration import ticks_family
from tests.integration.harness import Client, Endpoint, in_process_server, server_types

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TSC = ROOT / "frontend-types" / "node_modules" / ".bin" / "tsc"


def _script(name: str) -> ModuleType:
    """A generator script as a module (``scripts/`` is not a package)."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)  # the scripts import each other by name
    spec = importlib.util.spec_from_file_location(f"_gen_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every generator's output for the registry with ``ticks``, in a temporary tree whose
    router package is importable (the family's ``router_module`` points there)."""
    root = tmp_path_factory.mktemp("generated")
    registry = ticks_family.registry()
    routers = _script("generate_ws_routers")
    for path, text in routers.render_all(registry, root / ticks_family.ROUTER_PACKAGE).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    sys.path.insert(0, str(root))  # the document is built from an app serving the routers
    document = _script("generate_asyncapi").render(registry)
    (root / "asyncapi.json").write_text(document)
    subprocess.run(
        [
            "node",
            str(ROOT / "scripts" / "generate_ws_types.mjs"),
            "--source",
            str(root / "asyncapi.json"),
            "--output",
            str(root / "ts" / "messages.ts"),
            "--codes-output",
            str(root / "ts" / "codes.ts"),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    client = _script("generate_python_client").render(json.loads(document))
    for name, text in client.items():
        (root / "client" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "client" / name).write_text(text)
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith(ticks_family.ROUTER_PACKAGE)]:
            del sys.modules[name]


def test_the_router_is_rendered_from_the_declaration(tree: Path) -> None:
    router = (tree / ticks_family.ROUTER_PACKAGE / "ticks.py").read_text()
    assert 'OperationRouter(prefix="ticks.", tags=["ticks"])' in router
    assert "from tests.integration.ticks_family import (" in router
    assert "payload: TicksSubscribePayload, client: Connection" in router
    # The shipped families come from the same registry, next to it.
    rendered = {path.name for path in (tree / ticks_family.ROUTER_PACKAGE).glob("*.py")}
    assert rendered == {
        "__init__.py",
        "bars.py",
        "quotes.py",
        "trades.py",
        "orderbook.py",
        "ticks.py",
    }


def test_the_document_has_the_family(tree: Path) -> None:
    document = json.loads((tree / "asyncapi.json").read_text())
    assert "Ticks of a fake source." in document["channels"]["ticks"]["description"]
    assert "stream/ticks/{symbol}" in document["channels"]
    messages = document["components"]["messages"]
    for type_ in ("ticks.subscribe", "ticks.subscribe.response", "ticks.update"):
        assert message_name(type_) in messages, type_
    assert "`ticks.subscribe`" in document["info"]["description"]


def test_the_typescript_types_have_the_family_and_refuse_a_typo(tree: Path) -> None:
    messages = (tree / "ts" / "messages.ts").read_text()
    assert "export interface TicksUpdateMessage" in messages
    (tree / "ts" / "use.ts").write_text(
        'import type { ClientMessage, ServerMessage } from "./messages.js";\n'
        "export const update: ServerMessage = {\n"
        '  type: "ticks.update",\n'
        '  payload: { topic: "t", symbol: "TICK1", seq: 1, value: 0.5 },\n'
        "};\n"
        'export const ask: ClientMessage = { type: "ticks.subscribe", payload: '
        '{ symbol: "TICK1", params: {} } };\n'
        "// @ts-expect-error a typo in a ticks message\n"
        'export const typo: ClientMessage = { type: "ticks.subscrbe", payload: '
        '{ symbol: "TICK1", params: {} } };\n'
    )
    compiled = subprocess.run(
        [
            str(TSC),
            "--strict",
            "--noEmit",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--target",
            "es2022",
            str(tree / "ts" / "use.ts"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_the_python_client_has_the_family(tree: Path) -> None:
    models = (tree / "client" / "models.py").read_text()
    channels = (tree / "client" / "channels.py").read_text()
    assert "class TicksUpdatePayload(ServerModel):" in models
    assert 'type: Literal["ticks.subscribe"] = "ticks.subscribe"' in models
    assert "async def subscribe_ticks(self, symbol: str) -> TicksSubscription:" in channels


def serving() -> contextlib.AbstractAsyncContextManager[Endpoint]:
    """The registry with ``ticks`` and its fake source, served in this process."""
    return in_process_server(channels=ticks_family.registry(), feeds=[ticks_family.TickFeed()])


def _validator(document: dict[str, Any], message_type: str) -> jsonschema.Draft202012Validator:
    schema = {
        "$ref": f"#/components/schemas/{message_name(message_type)}",
        "components": document["components"],
    }
    return jsonschema.Draft202012Validator(schema)


def _checker(document: dict[str, Any]) -> Callable[[str | bytes], None]:
    """Each received frame checked against the rendered document's schema for its type."""

    def check(raw: str | bytes) -> None:
        frame = json.loads(raw)
        _validator(document, frame["type"]).validate(frame)

    return check


async def test_the_family_is_served_end_to_end(tree: Path) -> None:
    document = json.loads((tree / "asyncapi.json").read_text())
    update_schema = _validator(document, "ticks.update")
    async with serving() as server:
        async with connect(server.ws, subprotocols=["marketcast.v1"]) as ws:  # type: ignore[list-item]
            client = Client(ws, check=_checker(document), types=server_types(document))
            reply = await client.request("ticks.subscribe", {"symbol": "TICK1", "params": {}})
            _validator(document, "ticks.subscribe.response").validate(reply)
            assert reply["payload"]["topic"] == 'ticks:{"symbol":"TICK1"}'
            seqs: list[int] = []
            while len(seqs) < 5:
                frame = await client.recv()
                assert frame["type"] == "ticks.update", frame
                update_schema.validate(frame)
                seqs.append(frame["payload"]["seq"])
            assert seqs == sorted(seqs)
            # A family the source lacks is refused with a typed error, the connection stays.
            refused = await client.request(
                "bars.subscribe", {"symbol": "TICK1", "params": {"resolution": "1"}}
            )
            assert refused["type"] == "error"
            assert refused["payload"]["code"] == "unsupported_channel"
        async with connect(f"{server.ws}/stream/ticks/TICK1") as raw:
            frame = json.loads(await asyncio.wait_for(raw.recv(), 10))
            assert frame["type"] == "ticks.update"
            update_schema.validate(frame)
