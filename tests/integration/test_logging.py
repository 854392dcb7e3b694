"""Logs of a real server (``MARKETCAST_LOG_FORMAT=json``): one JSON object per line, one line
per connection open and close carrying its id, nothing per tick at INFO, secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from marketcast.redaction import MAX_MESSAGE_CHARS
from tests.integration.harness import client, run_server

SECRET = "Tw3lve-Data-Key-0123456789"


async def test_json_logs_are_quiet_and_redacted(tmp_path: Path) -> None:
    with run_server(
        tmp_path,
        log_format="json",
        twelvedata_api_key=SECRET,
        sim_speed=60,
        sim_tick_interval=0.05,
    ) as server:
        async with client(server, max_queue=None) as c:
            await c.subscribe_bars("BTCUSDT", "1")
            updates = [await c.recv() for _ in range(40)]
        async with httpx.AsyncClient(base_url=server.http) as http:
            # A secret in a token-like query parameter, and the configured value elsewhere.
            await http.get("/healthz", params={"apikey": "not-configured-but-redacted"})
            await http.get("/api/v1/market-data/history", params={"symbol": SECRET})
            # A long request target is logged capped, status included. Under h11's 16 KiB
            # limit for a request still arriving: a longer one is served only when the kernel
            # hands it over in one read (a 400 on a loaded machine otherwise).
            long_url = await http.get("/healthz?" + "j" * 12_000)
    assert all(u["type"] == "bars.update" for u in updates)

    lines = server.log().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    messages = [r["message"] for r in records]

    opened = [m for m in messages if m.startswith("connection opened ")]
    closed = [m for m in messages if m.startswith("connection closed ")]
    assert len(opened) == 1
    assert len(closed) == 1
    uid = opened[0].split()[2]
    assert uid in closed[0]
    # uvicorn's own per-connection lines are not repeated at INFO.
    assert not any(m in ("connection open", "connection closed") for m in messages)

    # 40 updates flowed; the log did not grow with them.
    assert len(records) < 30, messages

    assert long_url.status_code == 200
    [long_line] = [m for m in messages if "/healthz?jjj" in m]
    assert long_line.endswith(' …[truncated 10985 chars] HTTP/1.1" 200')
    assert len(long_line) < MAX_MESSAGE_CHARS

    assert SECRET not in server.log()
    assert "not-configured-but-redacted" not in server.log()
    assert sum("[redacted]" in m for m in messages) == 2
