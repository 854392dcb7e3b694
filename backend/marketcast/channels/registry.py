"""The families this server ships, as a registry the app factory builds."""

from __future__ import annotations

from marketcast.channels.bars import BarsFamily
from marketcast.channels.base import Registry
from marketcast.channels.orderbook import OrderbookFamily
from marketcast.channels.quotes import QuotesFamily
from marketcast.channels.trades import TradesFamily


def default_registry() -> Registry:
    """Every shipped family. A new one is added here and declared in its own module."""
    return Registry((BarsFamily(), QuotesFamily(), TradesFamily(), OrderbookFamily()))
