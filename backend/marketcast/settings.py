"""Settings, read from ``MARKETCAST_*`` environment variables (and a ``.env`` file if present).

Every default runs the server with no services and no network: simulator feed, in-memory
store, in-process fan-out.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Defaults for the simulator: symbol, asset class, starting price.
DEFAULT_SIM_SYMBOLS = ["BTCUSDT", "ETHUSDT", "EUR/USD", "AAPL"]


class Settings(BaseSettings):
    """All of marketcast's configuration; ``create_app`` takes one of these."""

    model_config = SettingsConfigDict(env_prefix="MARKETCAST_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: critical, error, warning, info, debug or trace (uvicorn's protocol details).
    log_level: str = "info"
    #: ``text``: one readable line per record; ``json``: one JSON object per line, for log
    #: shippers. Both redact secrets (``marketcast.logs``).
    log_format: Literal["text", "json"] = "text"
    #: The URL written into the AsyncAPI document's ``servers``; defaults to host:port.
    public_ws_url: str | None = None

    # -- simulator feed ---------------------------------------------------------------------
    sim_symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SIM_SYMBOLS)
    )
    sim_seed: int = 7
    #: Simulated seconds per real second (60 = one simulated minute every real second).
    sim_speed: float = Field(default=1.0, gt=0, le=100_000)
    #: Real seconds between two simulated trades of one symbol.
    sim_tick_interval: float = Field(default=0.25, gt=0, le=60)
    #: Real UNIX time (seconds) at which simulated time equals real time; by default the
    #: process start. Workers of one cluster need the same value when ``sim_speed`` is not 1,
    #: or their simulated clocks disagree and a key taken over jumps in time.
    sim_anchor: float | None = None

    # -- streams and store ------------------------------------------------------------------
    #: Bars kept per (symbol, resolution).
    store_capacity: int = Field(default=1000, ge=10, le=100_000)
    #: Seconds a key keeps running after its last subscriber left (a quick re-subscribe
    #: then costs nothing upstream).
    stream_grace_period: float = Field(default=5.0, ge=0)
    #: A running key with no upstream data for this many of its bar intervals is stale...
    stale_after_intervals: float = Field(default=3.0, gt=0)
    #: ...or for this many seconds, whichever is shorter (quotes: this alone).
    stale_max_seconds: float = Field(default=300.0, gt=0)

    # -- upstreams (docs/operations.md): empty symbol lists keep the simulator alone --------
    #: Symbols served by Binance (``BTCUSDT,ETHUSDT``); they are taken from the simulator.
    binance_symbols: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Base URL of the combined streams (``/stream`` is appended); the market-data endpoint.
    binance_ws_url: str = "wss://data-stream.binance.vision"
    #: Base URL of the REST API (klines).
    binance_rest_url: str = "https://api.binance.com"
    #: Streams per upstream connection before a second one opens (Binance allows 1024).
    binance_max_streams: int = Field(default=1024, ge=1, le=1024)
    #: Full-jitter reconnect backoff, seconds: from this...
    binance_reconnect_min: float = Field(default=1.0, gt=0)
    #: ...doubling up to this.
    binance_reconnect_max: float = Field(default=30.0, gt=0)
    #: Seconds before a connection is replaced (Binance cuts every connection at 24 h).
    binance_max_connection_age: float = Field(default=84_600.0, gt=0, le=86_400)
    #: Seconds without any frame after which a connection counts as stalled.
    binance_stall_timeout: float = Field(default=60.0, gt=0)
    #: Symbols served by Twelve Data (``EUR/USD,GBP/USD``); they are taken from the simulator.
    twelvedata_symbols: Annotated[list[str], NoDecode] = Field(default_factory=list)
    twelvedata_rest_url: str = "https://api.twelvedata.com"
    #: Required when ``twelvedata_symbols`` is set; sent in a header, never logged.
    twelvedata_api_key: SecretStr | None = None
    #: Requests allowed per ``twelvedata_budget_window`` seconds, shared by all keys.
    twelvedata_budget: int = Field(default=8, ge=1)
    twelvedata_budget_window: float = Field(default=60.0, gt=0)
    #: Shortest interval between two polls of one series, seconds.
    twelvedata_min_poll: float = Field(default=10.0, gt=0)
    #: Seconds an upstream request (or connection attempt) may take.
    upstream_timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("binance_symbols", "twelvedata_symbols", mode="before")
    @classmethod
    def _split_upstream_symbols(cls, value: object) -> object:
        """Accept ``BTCUSDT,ETHUSDT`` from the environment as well as a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("binance_ws_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")) or len(value.split("://", 1)[1]) < 1:
            raise ValueError("expected a ws:// or wss:// base URL like wss://host:9443")
        return value.rstrip("/")

    @field_validator("binance_rest_url", "twelvedata_rest_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1]) < 1:
            raise ValueError("expected an http:// or https:// base URL like https://host")
        return value.rstrip("/")

    # -- cluster: shared store, cross-worker bus, upstream leases (docs/operations.md) -------
    #: Where candles are kept: ``memory://`` (this process only) or ``redis://host:port/db``
    #: (shared by every worker, so any worker answers history and snapshots).
    store_url: str = "memory://"
    #: How updates reach clients on other workers: ``memory://`` (a single worker) or
    #: ``redis://host:port/db`` (pub/sub; also where upstream leases and demand live).
    bus_url: str = "memory://"
    #: Prefix of every Redis key and channel, so several deployments can share one Redis.
    redis_prefix: str = Field(default="marketcast", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: Seconds a Redis command may take before the connection counts as broken.
    redis_timeout: float = Field(default=2.0, gt=0, le=60)
    #: The longest an upstream key stays without an owner after its owner died: leases live
    #: two thirds of it and are renewed every third, and every worker looks every third.
    lease_ttl: float = Field(default=10.0, ge=0.5, le=600)
    #: This worker's name in leases and logs, unique in the cluster; default host:pid:random.
    worker_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$")

    # -- per-connection limits --------------------------------------------------------------
    #: Frames queued for one client before it counts as a slow consumer and is closed (4008).
    outbox_max_messages: int = Field(default=1000, ge=1)
    #: Bytes queued for one client before it counts as a slow consumer and is closed (4008).
    outbox_max_bytes: int = Field(default=1_048_576, ge=1024)
    #: Seconds behind (the oldest byte it has not taken, kernel send queue included) before a
    #: client is closed as a slow consumer (4008); checked once a second. 0 turns this bound
    #: off (the queue limits above, and more than ``outbox_max_bytes`` waiting in total at
    #: two checks in a row, still apply). See ``marketcast.delivery.lag``.
    slow_consumer_lag: float = Field(default=10.0, ge=0)
    #: Largest client frame accepted, in bytes; larger frames close the connection (1009).
    max_message_bytes: int = Field(default=65_536, ge=256)
    #: Subscriptions one connection may hold.
    max_subscriptions: int = Field(default=200, ge=1)
    #: Client frames per second a connection may send (token bucket refill rate); a frame
    #: over the limit gets a ``rate_limited`` error. 0 turns rate limiting off.
    rate_limit_per_second: float = Field(default=50.0, ge=0)
    #: Frames a connection may send at once before the rate applies (the bucket's size);
    #: large enough to subscribe to ``max_subscriptions`` topics in one go.
    rate_limit_burst: int = Field(default=250, ge=1)
    #: Refused frames a connection may accumulate (one forgiven per second) before it is
    #: closed for sustained abuse (1008).
    rate_limit_max_refused: int = Field(default=50, ge=1)
    #: Seconds a connection may stay open (0 = no limit); it gets a ``notice`` first, then a
    #: going-away close (1001). Each connection's limit is up to 10% shorter (jitter), so
    #: connections opened together do not all reconnect together.
    max_connection_lifetime: float = Field(default=0.0, ge=0)

    # -- per-worker limits and lifecycle ----------------------------------------------------
    #: Open WebSocket connections per worker (0 = no cap); beyond it a connection is
    #: accepted and closed at once with 1013 (try again later).
    max_connections: int = Field(default=0, ge=0)
    #: Open TCP connections per worker, HTTP and WebSocket alike; beyond it a new one gets a
    #: fixed 503 (``Retry-After``) and is closed before anything is read. 0 = automatic:
    #: the file-descriptor soft limit minus 128 kept for everything else (at least half the
    #: limit), so the worker refuses clients before ``accept()`` runs out of descriptors.
    max_tcp_connections: int = Field(default=0, ge=0)
    #: Seconds a connection has, from opening (or from the end of its previous response),
    #: to send a complete request head; then 408 and close (a connection that sent nothing
    #: is closed quietly). Stops clients that trickle header lines to hold sockets.
    http_header_timeout: float = Field(default=10.0, gt=0, le=3600)
    #: Seconds a request body may take after its head; then 408 (if no response started)
    #: and close.
    http_body_timeout: float = Field(default=30.0, gt=0, le=3600)
    #: Seconds between a ``notice`` and the planned close it announces (lifetime, shutdown).
    close_notice_seconds: float = Field(default=5.0, ge=0)
    #: Seconds a planned close waits for the frames already queued to be written.
    drain_timeout: float = Field(default=10.0, ge=0)
    #: Seconds a close frame may take to go out before the TCP connection is aborted (a
    #: stalled peer's socket cannot even take the close frame).
    close_timeout: float = Field(default=2.0, gt=0)
    #: Seconds between protocol (RFC 6455) pings to each client; browsers answer them.
    ws_ping_interval: float = Field(default=20.0, gt=0)
    #: Seconds a client has to answer a protocol ping before it is dropped as dead.
    ws_ping_timeout: float = Field(default=20.0, gt=0)
    #: Offer permessage-deflate to clients, without server context takeover (``serving``): a
    #: frame is compressed once and the same bytes go to every client that negotiated it
    #: (``wire.Frame.deflated``); clients that do not offer it get plain frames. Frames under
    #: 64 bytes go out uncompressed either way.
    ws_per_message_deflate: bool = True
    #: The event loop ``marketcast serve`` runs on. ``auto``: uvloop where it is installed
    #: (a dependency on Linux and macOS), asyncio's own otherwise. uvloop's transports write
    #: in C: 15.2 -> 12.9 µs of server CPU per delivery at the benchmark's market load.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    #: Seconds each connection collects frames before writing them in one ``send()`` (0:
    #: write each frame as it comes). Trades latency for CPU: on loopback the kernel's
    #: ``send()`` is most of a delivery's cost, and a delay of a few ms lets a client with
    #: several busy topics get them in one write (and conflates a still-open bar's updates).
    ws_write_delay: float = Field(default=0.0, ge=0, le=1.0)
    #: ``gc.freeze()`` after start-up and after new topics' history is loaded, so full
    #: collections stop walking long-lived history and connections (docs/performance.md).
    gc_freeze: bool = True

    # -- REST limits (per client address) ----------------------------------------------------
    #: Requests per second one client address may make to ``/api/v1/market-data/*`` (token
    #: bucket refill; a request returning bars costs one more per 50 bars). Over it: 429
    #: with ``Retry-After``. 0 turns the limit off. Health, readiness and metrics are exempt.
    rest_rate_limit_per_second: float = Field(default=20.0, ge=0)
    #: Requests one client address may make at once before the rate applies.
    rest_rate_limit_burst: int = Field(default=100, ge=1)
    #: History or snapshot reads (REST ``history``, ``snapshot``/``since`` replies) running at
    #: once in this worker; more wait their turn. Bounds what a burst of costly requests can
    #: make the store and the upstreams do at the same time.
    max_concurrent_history: int = Field(default=8, ge=1, le=1000)

    # -- security -----------------------------------------------------------------------------
    #: Browser origins allowed to open a WebSocket, exact ``scheme://host[:port]``, comma
    #: separated; anything else gets 403 at the handshake. Empty: any origin (development).
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Tokens a client may present as the subprotocol ``token.<TOKEN>``, comma separated.
    #: Empty: no authentication. Never logged.
    auth_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    @field_validator("sim_symbols", "allowed_origins", "auth_tokens", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        """Accept ``BTCUSDT,EUR/USD`` (or origins, tokens) from the environment as a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # -- observability (docs/operations.md) ---------------------------------------------------
    #: Serve Prometheus metrics at ``/metrics`` (unauthenticated: block it at the proxy if
    #: the server is public).
    metrics_enabled: bool = True
    #: One frame in this many, per connection, is timed for the fan-out latency histogram;
    #: timing every frame would cost a clock read per delivery.
    metrics_latency_sample_every: int = Field(default=16, ge=1, le=1_000_000)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().lower()
        if level not in ("critical", "error", "warning", "info", "debug", "trace"):
            raise ValueError("expected critical, error, warning, info, debug or trace")
        return level
