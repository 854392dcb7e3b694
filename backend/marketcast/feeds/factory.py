"""``build_feeds``: which feed serves which symbol, from settings.

The simulator stays the default: with no upstream symbols configured nothing here touches the
network. A symbol listed for Binance or Twelve Data is taken away from the simulator (so the
default ``sim_symbols`` need not be edited to switch ``BTCUSDT`` to the real thing), and a
simulator left with no symbols is not built. Mistakes that settings validation cannot see
(a symbol in two upstream lists, a Twelve Data list without an API key, a malformed symbol)
raise ``ConfigurationError``, which the CLI prints as one line.
"""

from __future__ import annotations

import logging
import re

from marketcast.errors import ConfigurationError
from marketcast.feeds.base import Feed
from marketcast.feeds.binance import BinanceFeed
from marketcast.feeds.simulator import SimulatorFeed
from marketcast.feeds.twelvedata import TwelveDataFeed
from marketcast.protocol import SYMBOL_PATTERN
from marketcast.settings import Settings

log = logging.getLogger("marketcast.feeds")

_BINANCE_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")


def build_feeds(settings: Settings) -> list[Feed]:
    """The feeds of this server, each with the symbols it serves."""
    binance, twelvedata = settings.binance_symbols, settings.twelvedata_symbols
    for name, symbols, pattern, example in (
        ("MARKETCAST_BINANCE_SYMBOLS", binance, _BINANCE_SYMBOL, "BTCUSDT,ETHUSDT"),
        ("MARKETCAST_TWELVEDATA_SYMBOLS", twelvedata, re.compile(SYMBOL_PATTERN), "EUR/USD"),
    ):
        for symbol in symbols:
            if not pattern.match(symbol):
                raise ConfigurationError(
                    f"{name} contains {symbol!r}: expected upper-case symbols like {example}"
                )
    both = sorted(set(binance) & set(twelvedata))
    if both:
        raise ConfigurationError(
            "MARKETCAST_BINANCE_SYMBOLS and MARKETCAST_TWELVEDATA_SYMBOLS both list "
            + ", ".join(both)
        )
    feeds: list[Feed] = []
    if binance:
        feeds.append(
            BinanceFeed(
                binance,
                ws_url=settings.binance_ws_url,
                rest_url=settings.binance_rest_url,
                max_streams=settings.binance_max_streams,
                reconnect_min=settings.binance_reconnect_min,
                reconnect_max=max(settings.binance_reconnect_max, settings.binance_reconnect_min),
                max_connection_age=settings.binance_max_connection_age,
                stall_timeout=settings.binance_stall_timeout,
                timeout=settings.upstream_timeout,
            )
        )
    if twelvedata:
        key = settings.twelvedata_api_key
        if key is None or not key.get_secret_value():
            raise ConfigurationError(
                "MARKETCAST_TWELVEDATA_API_KEY is required when MARKETCAST_TWELVEDATA_SYMBOLS "
                "is set"
            )
        feeds.append(
            TwelveDataFeed(
                twelvedata,
                rest_url=settings.twelvedata_rest_url,
                api_key=key.get_secret_value(),
                budget=settings.twelvedata_budget,
                window=settings.twelvedata_budget_window,
                min_poll=settings.twelvedata_min_poll,
                timeout=settings.upstream_timeout,
            )
        )
    upstream = set(binance) | set(twelvedata)
    simulated = [s for s in settings.sim_symbols if s not in upstream]
    if simulated or not feeds:
        sim = settings.model_copy(update={"sim_symbols": simulated})
        feeds.insert(0, SimulatorFeed.from_settings(sim))
    if upstream:
        log.info(
            "feeds: binance %s, twelvedata %s, simulator %s",
            binance or "-",
            twelvedata or "-",
            simulated or "-",
        )
    return feeds
