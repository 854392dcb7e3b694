"""Candle stores: recent history per (symbol, resolution), shared by REST and snapshots."""
