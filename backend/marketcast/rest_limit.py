"""The per-client REST rate limit, as ASGI middleware in front of the routes.

Why middleware and not a route dependency: a refused request must cost as little as
possible, because a client that ignores 429 sends them as fast as it can (ten such clients
sent 700 requests a second in the abuse benchmark). Checked here, a refusal is a dictionary
lookup, a token count and one pre-built response — no routing, no query validation, no
exception handling. An admitted request carries its bucket in the request state
(``request.state.rate_bucket``), so the route can charge it afterwards for the bars it
returned or had fetched (``marketcast.ratelimit``).
"""

from __future__ import annotations

import math
from typing import Final

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from marketcast.errors import ErrorCode
from marketcast.ratelimit import BARS_PER_TOKEN, ClientBuckets

#: Where an admitted request's bucket is left for the route (``request.state``).
BUCKET_STATE: Final = "rate_bucket"


class RestRateLimit:
    """Refuses requests under ``prefix`` over their client address's bucket with 429."""

    def __init__(self, app: ASGIApp, *, buckets: ClientBuckets, prefix: str) -> None:
        self.app = app
        self._buckets = buckets
        self._prefix = prefix
        self._body = orjson.dumps(
            {
                "detail": {
                    "code": ErrorCode.RATE_LIMITED.value,
                    "message": f"rate limit exceeded: at most {buckets.rate:g} requests per "
                    f"second (bursts of {buckets.burst}; a request costs one more per "
                    f"{BARS_PER_TOKEN} bars it returns or has fetched); retry after "
                    "Retry-After seconds",
                }
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self._prefix):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        bucket = self._buckets.bucket(client[0] if client else "unknown")
        if not bucket.take():
            retry_after = str(max(1, math.ceil(bucket.wait_time())))
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(self._body)).encode()),
                        (b"retry-after", retry_after.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": self._body})
            return
        scope.setdefault("state", {})[BUCKET_STATE] = bucket
        await self.app(scope, receive, send)
