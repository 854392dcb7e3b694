"""The WebSocket side: adapter, hub, outboxes and the generated routers."""
