"""The Redis bus's messages, and the subscription stream they arrive in — pure, no I/O.

Message formats, each encoded once per publish (the frame text is never re-encoded)::

    kind \\n sender \\n topic \\n order \\n final \\n text        (F, R)
    B \\n sender \\n (topic \\n order \\n final \\n length \\n text)...   (B)

``kind`` is ``F`` (a frame), ``R`` (resync this topic from the store) or ``B`` (a batch of
frames, each with its text's length in bytes); unknown kinds are ignored, so a newer worker
can add one during a rolling upgrade. Neither topics (compact JSON) nor frame texts contain a
raw newline.

Why the reader splits the stream itself (``split_messages``): with one channel every worker
receives every update of the cluster, its own included, and redis-py's pure-Python reply
parser spent more on each than ingesting the candle had (``bus.redis``).
"""

from __future__ import annotations

from collections.abc import Sequence

from marketcast.wire import Frame

FRAME = b"F"
RESYNC = b"R"
BATCH = b"B"
BATCH_HEAD = BATCH + b"\n"
_ARRAY, _PUSH, _BULK, _INTEGER, _SIMPLE, _ERROR = b"*>$:+-"
#: What follows the ``*`` or ``>`` of a pub/sub ``message`` reply: three items, the first
#: the bulk string ``message``.
_MESSAGE_HEAD = b"3\r\n$7\r\nmessage\r\n"
_MESSAGE_HEAD_SIZE = 1 + len(_MESSAGE_HEAD)


def encode(kind: bytes, sender: bytes, frame: Frame) -> bytes:
    """One bus message; see the module docstring for the layout."""
    return b"\n".join(
        (
            kind,
            sender,
            (frame.topic or "").encode(),
            b"" if frame.order is None else str(frame.order).encode(),
            b"1" if frame.final else b"0",
            frame.text.encode(),
        )
    )


def encode_batch(sender: bytes, frames: Sequence[Frame]) -> bytes:
    """One ``B`` message carrying ``frames``; see the module docstring for the layout. (Each
    frame's header is one formatting, not five parts: this runs for every key a busy worker
    ingests.)"""
    parts = [BATCH_HEAD + sender]
    append = parts.append
    for frame in frames:
        text = frame.text.encode()
        order = frame.order
        append(
            b"\n%s\n%s\n%s\n%d\n"
            % (
                (frame.topic or "").encode(),
                b"" if order is None else b"%d" % order,
                b"1" if frame.final else b"0",
                len(text),
            )
        )
        append(text)
    return b"".join(parts)


def decode_batch(data: bytes) -> tuple[bytes, list[Frame]]:
    """(sender, frames) of a ``B`` message; ValueError if it is malformed."""
    head = data.split(b"\n", 2)
    if len(head) < 2 or head[0] != BATCH:
        raise ValueError(f"expected a batch message, got {data[:40]!r}")
    rest = head[2] if len(head) == 3 else b""
    frames: list[Frame] = []
    pos, size, find = 0, len(rest), rest.find
    while pos < size:
        fields = []
        for _ in range(4):  # topic, order, final, length
            end = find(b"\n", pos)
            if end < 0:
                raise ValueError("a batch frame's header is cut short")
            fields.append(rest[pos:end])
            pos = end + 1
        topic, order, final, length = fields
        stop = pos + int(length)
        if stop > size:
            raise ValueError(f"a batch frame of {int(length)} bytes runs past the message")
        text = rest[pos:stop].decode()
        frames.append(
            Frame(text, topic.decode() or None, int(order) if order else None, final == b"1")
        )
        pos = stop + 1
    return head[1], frames


def decode(data: bytes) -> tuple[bytes, bytes, Frame]:
    """(kind, sender, frame) of a bus message; ValueError if it is malformed."""
    kind, sender, topic, order, closed, text = data.split(b"\n", 5)
    frame = Frame(
        text.decode(),
        topic.decode() or None,
        int(order) if order else None,
        closed == b"1",
    )
    return kind, sender, frame


def split_messages(buffer: bytes) -> tuple[list[bytes], int]:
    """The data of every complete pub/sub ``message`` in ``buffer`` (a subscription's byte
    stream, RESP2 or RESP3), and how many bytes the complete replies took: the rest is the
    start of a reply still arriving. Other replies (a subscribe confirmation, a pong) are
    skipped; an error reply or a malformed one raises ValueError."""
    messages: list[bytes] = []
    size, pos = len(buffer), 0
    while pos < size:
        if buffer.startswith(_MESSAGE_HEAD, pos + 1) and buffer[pos] in (_ARRAY, _PUSH):
            # Nearly every reply is a ``message`` (channel, data): read it directly; anything
            # else about it (a null bulk, a reply cut short) goes the general way below.
            at = pos + _MESSAGE_HEAD_SIZE
            if buffer.startswith(b"$", at):
                end = buffer.find(b"\r\n", at)
                channel = int(buffer[at + 1 : end]) if end > 0 else -1
                if channel >= 0:
                    at = end + 4 + channel
                    if buffer.startswith(b"$", at):
                        end = buffer.find(b"\r\n", at)
                        if end > 0:
                            length = int(buffer[at + 1 : end])
                            stop = end + 2 + length
                            if length >= 0 and stop + 2 <= size:
                                messages.append(buffer[end + 2 : stop])
                                pos = stop + 2
                                continue
        head = buffer.find(b"\r\n", pos)
        if head < 0:
            break
        kind = buffer[pos]
        if kind in (_SIMPLE, _INTEGER):
            pos = head + 2
            continue
        if kind == _ERROR:
            raise ValueError(f"error reply on the bus subscription: {buffer[pos:head]!r}")
        if kind not in (_ARRAY, _PUSH):
            raise ValueError(f"unexpected reply on the bus subscription: {buffer[pos:head]!r}")
        items: list[bytes] = []
        at = head + 2
        for _ in range(int(buffer[pos + 1 : head])):
            end = buffer.find(b"\r\n", at)
            if end < 0:
                break
            item = buffer[at]
            if item == _BULK:
                length = int(buffer[at + 1 : end])
                stop = end + 2 + max(length, 0)
                if stop + 2 > size and length >= 0:
                    break
                items.append(buffer[end + 2 : stop])
                at = stop + 2 if length >= 0 else end + 2
            elif item in (_INTEGER, _SIMPLE):
                items.append(buffer[at + 1 : end])
                at = end + 2
            else:
                raise ValueError(f"unexpected reply on the bus subscription: {buffer[at:end]!r}")
        else:
            pos = at
            if len(items) == 3 and items[0] == b"message":
                messages.append(items[2])
            continue
        break  # a reply cut short: wait for the rest
    return messages, pos
