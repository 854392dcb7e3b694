"""Upstream feeds: leaves that know nothing of WebSockets, only of candles and quotes."""
