"""Who is on the other end of a connection: set by ``ws.security`` at the handshake, carried
by the connection so that per-topic authorization can ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on the other end of a connection, as far as authorization cares."""

    #: A non-secret name: ``anonymous``, ``token#2`` (the second configured token), or
    #: whatever a custom verifier returns.
    subject: str


ANONYMOUS: Final = Principal("anonymous")
