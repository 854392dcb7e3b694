"""Settings, read from ``MARKETCAST_*`` environment variables (and a ``.env`` file if present).

Every default runs the server with no services and no network: simulator feed, in-memory
store, in-process fan-out.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Defaults for the simulator: symbol, asset class, starting price.
DEFAULT_SIM_SYMBOLS = ["BTCUSDT", "ETHUSDT", "EUR/USD", "AAPL"]


class Settings(BaseSettings):
    """All of marketcast's configuration; ``create_app`` takes one of these."""

    model_config = SettingsConfigDict(env_prefix="MARKETCAST_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"
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

    # -- streams and store ------------------------------------------------------------------
    #: Bars kept per (symbol, resolution).
    store_capacity: int = Field(default=1000, ge=10, le=100_000)
    #: Seconds a key keeps running after its last subscriber left (a quick re-subscribe
    #: then costs nothing upstream).
    stream_grace_period: float = Field(default=5.0, ge=0)

    # -- per-connection limits --------------------------------------------------------------
    #: Frames queued for one client before it counts as a slow consumer and is closed (4008).
    outbox_max_messages: int = Field(default=1000, ge=1)
    #: Bytes queued for one client before it counts as a slow consumer and is closed (4008).
    outbox_max_bytes: int = Field(default=1_048_576, ge=1024)
    #: Largest client frame accepted, in bytes; larger frames close the connection (1009).
    max_message_bytes: int = Field(default=65_536, ge=256)
    #: Subscriptions one connection may hold.
    max_subscriptions: int = Field(default=200, ge=1)

    @field_validator("sim_symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        """Accept ``BTCUSDT,EUR/USD`` from the environment as well as a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
