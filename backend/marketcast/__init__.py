"""marketcast: a real-time market-data WebSocket API.

Candles and quotes flow one way: feed -> normalize -> hub -> outbox -> socket, and
feed -> store -> REST. ``marketcast.app.create_app`` builds and wires every part.
"""

__version__ = "0.1.0"
