"""The ``system`` operations every connection has: ``ping`` -> ``pong``.

Browsers cannot send or see WebSocket protocol pings, so clients that need to detect a dead
connection send this application-level ping and time the ``pong``.
"""

from __future__ import annotations

import time

from fastws import OperationRouter

from marketcast.protocol import PingPayload, PongPayload


def build_system_router() -> OperationRouter:
    router = OperationRouter(tags=["system"])

    @router.send("ping", reply="pong", summary="Application-level ping; answered by pong.")
    def ping(payload: PingPayload) -> PongPayload:
        """Answer with the server's clock so clients can also estimate their offset."""
        return PongPayload(time=int(time.time() * 1000))

    return router
