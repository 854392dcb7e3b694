"""The server's frames as a consumer sees them: checked with the Python client's own models.

Those models (``clients/python/src/marketcast_client/models.py``) are generated from
``docs/asyncapi.json`` by ``scripts/generate_python_client.py`` and never from the server's
own ``protocol`` module, so a frame that validates here is one that the published client, and
any client generated from the published contract, can read. Validation is strict (no coercion
of ``"1"`` to ``1``, as a JavaScript consumer would not coerce either) and refuses fields the
contract does not list (``forbid_extra``; the installed client ignores them, to keep working
against a newer server).
"""

from __future__ import annotations

from typing import Final

from marketcast_client import models
from marketcast_client.models import ClientMessage, ServerMessage
from pydantic import TypeAdapter, ValidationError

__all__ = [
    "ContractViolation",
    "models",
    "validate_client_frame",
    "validate_server_frame",
]

_SERVER: Final = TypeAdapter[ServerMessage](ServerMessage)
_CLIENT: Final = TypeAdapter[ClientMessage](ClientMessage)
#: The installed client ignores unknown fields; the tests refuse them.
_STRICT: Final = {"forbid_extra": True}


class ContractViolation(AssertionError):
    """A frame that the published contract does not allow; an AssertionError so tests fail."""


def validate_server_frame(raw: str | bytes) -> ServerMessage:
    """Parse and validate one server-to-client frame, or raise ContractViolation saying why."""
    try:
        return _SERVER.validate_json(raw, strict=True, context=_STRICT)
    except ValidationError as exc:
        raise ContractViolation(f"server frame breaks docs/asyncapi.json: {raw!r}\n{exc}") from None


def validate_client_frame(raw: str | bytes) -> ClientMessage:
    """Parse and validate one client-to-server frame, or raise ContractViolation saying why."""
    try:
        return _CLIENT.validate_json(raw, strict=True, context=_STRICT)
    except ValidationError as exc:
        raise ContractViolation(f"client frame breaks docs/asyncapi.json: {raw!r}\n{exc}") from None
