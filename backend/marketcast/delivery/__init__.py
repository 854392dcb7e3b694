"""Per-client delivery, the bottom of the WebSocket stack: the topic index, bounded outboxes,
connections and their writers, direct writes, slow-consumer sweeps. It imports nothing from the
API surface (``ws/``: adapter, routers, spec, raw streams)."""
