"""The listening socket of ``marketcast serve``, bound before anything else starts.

Why bind first, ourselves: uvicorn binds only after the app's startup ran (feeds started,
Redis connected) and reports a taken port as a log record followed by a shutdown. Binding up
front turns the most common deployment mistake into one line naming the address, before any
work is done, and handing the bound socket to uvicorn leaves no window in which another
process could take the port between the check and the real bind.
"""

from __future__ import annotations

import errno
import socket

from marketcast.errors import MarketcastError

_HINTS = {
    errno.EADDRINUSE: "another process listens there: stop it, or choose another port with "
    "--port or MARKETCAST_PORT",
    errno.EACCES: "this user may not bind that port: use one above 1023",
    errno.EADDRNOTAVAIL: "no interface of this machine has that address: check --host or "
    "MARKETCAST_HOST",
}


class ListenError(MarketcastError):
    """The server cannot listen on the configured address."""


def display_address(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_listener(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening; ``ListenError`` if that fails.

    ``SO_REUSEADDR`` as uvicorn sets it: a restarted server may rebind at once while the
    previous one's connections are in TIME_WAIT, but two live servers still cannot share a
    port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        hint = _HINTS.get(exc.errno or 0)
        raise ListenError(
            f"cannot listen on {display_address(host, port)}: {reason}"
            + (f"; {hint}" if hint else "")
        ) from None
    sock.set_inheritable(True)
    return sock
