"""The WebSocket route table as the AsyncAPI builder sees it.

Why a translation step: fastws's ``Operation`` objects know each operation's payload and reply
models; ``ws.spec`` wants a flat list of messages with their direction and channel. Deriving one
from the other keeps the document generated from the code that actually routes frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastws import Operation
from pydantic import BaseModel

from marketcast.protocol import ErrorPayload, NoticePayload
from marketcast.ws.spec import MessageSpec


def message_specs(
    operations: Sequence[Operation], examples: Mapping[str, dict[str, Any]]
) -> list[MessageSpec]:
    """One MessageSpec per client message, reply and server update, plus ``error`` and
    ``notice`` (sent outside any route); ``examples``: an envelope per message type."""
    specs: list[MessageSpec] = []
    for op in operations:
        channel = op.operation.split(".")[0] if "." in op.operation else "system"
        if op.method == "SEND":
            payload_model = _model(op.parameters["payload"].annotation)
            specs.append(_spec(op.operation, "client", payload_model, channel, op, examples))
            reply = op.reply_operation
            assert reply is not None, f"{op.operation} has no reply operation"
            specs.append(
                _spec(
                    reply,
                    "server",
                    _model(op.response_model),
                    channel,
                    op,
                    examples,
                    reply_to=op.operation,
                )
            )
        else:
            specs.append(
                _spec(op.operation, "server", _model(op.response_model), channel, op, examples)
            )
    specs.append(
        MessageSpec(
            type="error",
            direction="server",
            payload=ErrorPayload,
            channel="system",
            summary="A client frame was refused; the connection stays open.",
            description=(
                "Sent once for each refused frame: invalid JSON, an unknown type, an invalid "
                "payload, an unknown symbol, an unsupported resolution, too many "
                "subscriptions, a topic the client may not read (`forbidden`), a frame over "
                "the rate limit (`rate_limited`, not processed, no `id`). Carries the "
                "request's `id` when it could be read."
            ),
            example=examples.get("error"),
        )
    )
    specs.append(
        MessageSpec(
            type="notice",
            direction="server",
            payload=NoticePayload,
            channel="system",
            summary="The server will close this connection soon; reconnect to resume.",
            description=(
                "Sent before a planned close: the server is shutting down (`shutdown`) or the "
                "connection reached its maximum lifetime (`max_lifetime`). Updates keep "
                "flowing until the close (code `close_code`, 1001) after `close_in_ms`; "
                "everything queued before the close is delivered. Open the next connection "
                "now and resubscribe bars with `since` = the last closed bar's time + 1."
            ),
            example=examples.get("notice"),
        )
    )
    return specs


def _spec(
    type_: str,
    direction: Any,
    payload: type[BaseModel],
    channel: str,
    op: Operation,
    examples: Mapping[str, dict[str, Any]],
    reply_to: str | None = None,
) -> MessageSpec:
    return MessageSpec(
        type=type_,
        direction=direction,
        payload=payload,
        channel=channel,
        summary=(op.summary if reply_to is None else f"Reply to {reply_to}.") or type_,
        description=op.description if reply_to is None else "",
        reply_to=reply_to,
        example=examples.get(type_),
    )


def _model(annotation: Any) -> type[BaseModel]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    raise TypeError(f"expected a pydantic model as payload/reply type, got {annotation!r}")
