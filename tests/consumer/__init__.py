"""The server's frames as a consumer sees them: checked against models generated from the spec.

``models.py`` is generated from ``docs/asyncapi.json`` (``scripts/generate_consumer_models.py``)
and never from the server's own ``protocol`` module, so a frame that validates here is one that
a client generated from the published contract can read. Validation is strict (no coercion of
``"1"`` to ``1``), because a JavaScript consumer would not coerce either.
"""

from __future__ import annotations

from typing import Final

from pydantic import TypeAdapter, ValidationError

from tests.consumer.models import ClientMessage, ServerMessage

__all__ = ["ContractViolation", "validate_client_frame", "validate_server_frame"]

_SERVER: Final = TypeAdapter(ServerMessage)
_CLIENT: Final = TypeAdapter(ClientMessage)


class ContractViolation(AssertionError):
    """A frame that the published contract does not allow; an AssertionError so tests fail."""


def validate_server_frame(raw: str | bytes) -> ServerMessage:
    """Parse and validate one server-to-client frame, or raise ContractViolation saying why."""
    try:
        return _SERVER.validate_json(raw, strict=True)
    except ValidationError as exc:
        raise ContractViolation(f"server frame breaks docs/asyncapi.json: {raw!r}\n{exc}") from None


def validate_client_frame(raw: str | bytes) -> ClientMessage:
    """Parse and validate one client-to-server frame, or raise ContractViolation saying why."""
    try:
        return _CLIENT.validate_json(raw, strict=True)
    except ValidationError as exc:
        raise ContractViolation(f"client frame breaks docs/asyncapi.json: {raw!r}\n{exc}") from None
