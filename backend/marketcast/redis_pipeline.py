"""``OrderedPipeline``: commands on one Redis connection, each sent without waiting for the
answers before it, answered in order.

Why: a worker ingesting many keys stores and publishes every update with one script call
(``bus.redis``). Waiting for each call's answer before sending the next left this worker idle
while Redis ran the call, and Redis idle while this worker built the next one: about a third
of the worker's time on one core. With a few calls in flight, both work at once.

Why one connection: Redis runs the commands of one connection in the order they arrived,
which is the order the bus needs (stored, then published, batch after batch). Commands on two
connections of the pool could run in either order.

Why the commands arrive packed (``pack``): redis-py encodes each argument of a command on its
own, in Python; a store call names a key per candle. Here the caller builds the bytes once.

Why the answers are read straight from the connection's stream (``parse_replies``): redis-py
reads each answer with a timeout of its own (a timer set and cancelled per answer) and its
pure-Python parser awaits each line, which cost more per store call than writing it. Its reads
are exact (a line, then a bulk of known length), so nothing of the stream waits in its parser
between answers: the answers in flight are read here many at once, with one timeout per read.
Where that is not so (the hiredis parser buffers ahead), redis-py reads them.

An answer that is an error reply fails only its own command (``ResponseError``, or the subclass
redis-py would raise). A connection error fails every command in flight, since none of them is
known to have run or not; the connection is dropped and the next command takes a fresh one
from the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

try:  # redis-py's pure-Python RESP2/RESP3 parsers (private: checked, never required)
    from redis._parsers.base import _AsyncRESPBase as _ExactParser
except ImportError:  # pragma: no cover - another redis-py layout: its own reads are used
    _ExactParser = None  # type: ignore[assignment,misc]


def pack(*args: bytes) -> bytes:
    """One command in RESP: an array of bulk strings."""
    return pack_after(b"", 0, args)


def bulk(arg: bytes) -> bytes:
    """One argument of a command, as a RESP bulk string: a caller that sends the same
    argument often (a key's name) can keep it this way."""
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def pack_after(head: bytes, head_count: int, args: Sequence[bytes]) -> bytes:
    """A command of the ``head_count`` arguments already in ``head`` (made bulk strings by
    ``bulk``), then ``args``. Each argument is copied once, into the command: a store call
    carries kilobytes, and making each a bulk string first and then joining them copied
    every byte three times."""
    parts = [b"*%d\r\n" % (head_count + len(args)), head]
    append = parts.append
    for arg in args:
        append(b"$%d\r\n" % len(arg))
        append(arg)
        append(b"\r\n")
    return b"".join(parts)


#: Bytes buffered for the socket above which a sender waits for them to drain.
_DRAIN_ABOVE = 1 << 18
#: Bytes asked of a connection's stream per read: every answer already there at once.
_READ_BYTES = 1 << 16


def exact_stream(connection: AbstractConnection | None) -> asyncio.StreamReader | None:
    """``connection``'s byte stream when redis-py reads it with its pure-Python parser, whose
    reads are exact (nothing of the stream is buffered between replies): then a caller may
    read whole replies from it itself. Else None (the hiredis parser reads ahead)."""
    stream = getattr(connection, "_reader", None)
    parser = getattr(connection, "_parser", None)
    if _ExactParser is None or not isinstance(stream, asyncio.StreamReader):
        return None
    return stream if isinstance(parser, _ExactParser) else None


class StreamSplitter:
    """Reads a Redis connection's byte stream a chunk at a time and splits what arrived into
    whole items with ``split`` (``parse_replies``, ``bus.redis_messages.split_messages``),
    keeping the start of an item still arriving for the next read."""

    def __init__(
        self,
        stream: asyncio.StreamReader,
        split: Callable[[bytes], tuple[list[Any], int]],
        *,
        closed: str,
        timeout: float | None = None,
    ) -> None:
        self._stream = stream
        self._split = split
        #: What a read that finds the stream closed raises (``RedisConnectionError``) with.
        self._closed = closed
        #: Seconds a read may wait (None: as long as it takes).
        self._timeout = timeout
        #: Bytes of an item not wholly arrived yet.
        self.pending = b""

    async def read(self) -> list[Any]:
        """The whole items that arrived with the next read (maybe none)."""
        if self._timeout is None:
            chunk = await self._stream.read(_READ_BYTES)
        else:
            async with asyncio.timeout(self._timeout):
                chunk = await self._stream.read(_READ_BYTES)
        if not chunk:
            raise RedisConnectionError(self._closed)
        pending = self.pending + chunk if self.pending else chunk
        items, used = self._split(pending)
        self.pending = pending[used:]
        return items


class ReplyError(str):
    """The text of an error reply (``-ERR ...``) as ``parse_replies`` returns it."""


#: ``_parse_reply``'s answer for a reply not wholly in the buffer yet.
_INCOMPLETE: Any = object()


def parse_replies(buffer: bytes) -> tuple[list[Any], int]:
    """The complete RESP2 replies at the start of ``buffer``, and how many bytes they took
    (the rest is a reply still arriving). As redis-py gives them without decoding: ``+`` and
    ``$`` as bytes, ``:`` as int, a null as None, ``*`` as a list; an error reply as its
    ``ReplyError`` text. Any other reply raises ValueError: this connection only ever carries
    the answers of the commands sent on it."""
    replies: list[Any] = []
    pos = 0
    while pos < len(buffer):
        reply, end = _parse_reply(buffer, pos)
        if reply is _INCOMPLETE:
            break
        replies.append(reply)
        pos = end
    return replies, pos


def _parse_reply(buffer: bytes, pos: int) -> tuple[Any, int]:
    """One reply starting at ``pos`` and where it ends, or ``_INCOMPLETE``."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, pos
    kind, line, after = buffer[pos], buffer[pos + 1 : end], end + 2
    if kind == 0x3A:  # ":"
        return int(line), after
    if kind == 0x2B:  # "+"
        return line, after
    if kind == 0x2D:  # "-"
        return ReplyError(line.decode(errors="replace")), after
    if kind == 0x24:  # "$"
        length = int(line)
        if length < 0:
            return None, after
        stop = after + length
        if stop + 2 > len(buffer):
            return _INCOMPLETE, pos
        return buffer[after:stop], stop + 2
    if kind == 0x2A:  # "*"
        items: list[Any] = []
        for _ in range(int(line)):  # a null array (-1) has none
            item, after = _parse_reply(buffer, after)
            if item is _INCOMPLETE:
                return _INCOMPLETE, pos
            items.append(item)
        return (items if int(line) >= 0 else None), after
    if kind == 0x5F:  # "_", RESP3's null
        return None, after
    raise ValueError(f"expected a RESP2 reply (+ - : $ *), got {buffer[pos : end + 2][:40]!r}")


async def _write(connection: AbstractConnection, command: bytes) -> None:
    """Write ``command`` on ``connection``. Why not always ``send_packed_command``: with a
    socket timeout set it wraps every write in a task of its own (``asyncio.wait_for``), which
    cost more than the rest of sending a store call; a write that fits the socket's buffer
    needs neither the task nor a wait. Where the connection is not the plain stream redis-py
    usually makes, or the buffer is full, redis-py writes (and waits) as it always does."""
    writer = getattr(connection, "_writer", None)
    if (
        isinstance(writer, asyncio.StreamWriter)
        and not writer.transport.is_closing()
        and writer.transport.get_write_buffer_size() < _DRAIN_ABOVE
    ):
        writer.write(command)
        return
    await connection.send_packed_command(command, check_health=False)


class OrderedPipeline:
    """Sends packed commands on one pooled connection, at most ``depth`` unanswered."""

    def __init__(self, client: Redis, *, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1 command in flight, got {depth}")
        self._pool = client.connection_pool
        self._depth = depth
        #: The connection in use, taken from the pool at the first command and given back
        #: once nothing is in flight (or it broke).
        self._connection: AbstractConnection | None = None
        #: The answer each command in flight waits for, oldest first.
        self._waiting: deque[asyncio.Future[Any]] = deque()
        #: Set whenever a command was answered: room for the next one.
        self._room = asyncio.Event()
        #: Reads the answers while commands are in flight.
        self._reader: asyncio.Task[None] | None = None
        #: Counts the connections taken: a reader or a failure of an earlier one (the pool
        #: may lend the very same object again) must not touch the commands of a later one.
        self._generation = 0
        #: The generation the current reader reads.
        self._reader_generation = -1
        #: Serialises senders: a command is written whole, and in the order sent.
        self._sending = asyncio.Lock()

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    @property
    def room(self) -> int:
        """Commands that may be sent now without waiting."""
        return max(self._depth - len(self._waiting), 0)

    async def ready(self) -> None:
        """Return once fewer than ``depth`` commands are in flight."""
        while len(self._waiting) >= self._depth:
            self._room.clear()
            await self._room.wait()

    async def send(self, command: bytes) -> asyncio.Future[Any]:
        """Send ``command`` once fewer than ``depth`` commands are in flight; return the
        future of its answer, which completes in the order commands were sent (cancelled
        if the pipeline closes first). A connection error while sending is raised here."""
        async with self._sending:
            await self.ready()
            connection = self._connection
            if connection is None:
                connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py lacks a hint
                self._connection = connection
                self._generation += 1
            generation = self._generation
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            try:
                await _write(connection, command)
            except BaseException as exc:
                await self._break(generation, exc)
                raise
            self._waiting.append(answer)
            if self._reader is None or self._reader_generation != generation:
                self._reader_generation = generation
                self._reader = asyncio.create_task(
                    self._read_answers(connection, generation), name="redis-pipeline-reader"
                )
            return answer

    async def _read_answers(self, connection: AbstractConnection, generation: int) -> None:
        """Hand each answer read on ``connection`` to the oldest command waiting, until none
        is or the connection was replaced (a broken one's commands were failed already: an
        answer still read from it must not complete a command sent on the next)."""
        try:
            stream = exact_stream(connection)
            if stream is not None:
                await self._read_stream(connection, stream, generation)
            else:
                await self._read_parsed(connection, generation)
        except BaseException as exc:
            # A connection error (or a reply this client could not parse, or cancellation):
            # whatever is in flight on this connection is lost to its senders.
            await self._break(generation, exc)
            return
        finally:
            if self._reader is asyncio.current_task():
                self._reader = None
        # Idle: give the connection back to the pool, unless a sender is writing on it now
        # (it starts the next reader once its command is out) or it was replaced.
        if self._generation == generation and not self._sending.locked():
            self._connection = None
            self._generation += 1
            await self._pool.release(connection)

    async def _read_stream(
        self, connection: AbstractConnection, stream: asyncio.StreamReader, generation: int
    ) -> None:
        """``_read_answers`` from the stream itself (``exact_stream``), every answer that has
        arrived at once, each read bounded by the connection's socket timeout as redis-py's."""
        waiting = self._waiting
        answers = StreamSplitter(
            stream,
            parse_replies,
            closed="Redis closed the connection with commands in flight",
            timeout=getattr(connection, "socket_timeout", None),
        )
        parse_error = getattr(connection, "_parser").parse_error  # noqa: B009 - private
        while waiting and self._generation == generation:
            replies = await answers.read()
            if len(replies) > len(waiting):
                raise RedisConnectionError(
                    f"expected at most {len(waiting)} answers, got {len(replies)}"
                )
            for reply in replies:
                failure = parse_error(str(reply)) if isinstance(reply, ReplyError) else None
                if isinstance(failure, RedisConnectionError):
                    raise failure  # as redis-py raises it (a Redis still loading its data)
                if not self._answered(generation, reply, failure):
                    return
                # One answer's callers at a time: they run (and queue their next commands)
                # before the next answer wakes others, so callers stay spread over commands.
                await asyncio.sleep(0)
        if answers.pending:
            raise RedisConnectionError(
                f"{len(answers.pending)} bytes past the last answer expected"
            )

    async def _read_parsed(self, connection: AbstractConnection, generation: int) -> None:
        """``_read_answers`` through redis-py's own reads, one answer at a time."""
        while self._waiting and self._generation == generation:
            try:
                answer, failure = await connection.read_response(), None
            except ResponseError as exc:
                answer, failure = None, exc
            if not self._answered(generation, answer, failure):
                return
            await asyncio.sleep(0)  # one answer's callers at a time, as in ``_read_stream``

    def _answered(self, generation: int, answer: Any, failure: BaseException | None) -> bool:
        """Complete the oldest command waiting; False if its connection was replaced."""
        if self._generation != generation:
            return False
        done = self._waiting.popleft()
        if not done.done():
            if failure is None:
                done.set_result(answer)
            else:
                done.set_exception(failure)
        self._room.set()
        return True

    async def _break(self, generation: int, exc: BaseException | None) -> None:
        """The connection of ``generation`` failed: every command in flight on it fails with
        ``exc`` (is cancelled for None)."""
        connection = self._connection
        if generation != self._generation or connection is None:
            return
        self._connection = None
        self._generation += 1
        while self._waiting:
            done = self._waiting.popleft()
            if done.done():
                continue
            if exc is None or isinstance(exc, asyncio.CancelledError):
                done.cancel()
            else:
                done.set_exception(exc)
        self._room.set()
        with contextlib.suppress(Exception):
            await connection.disconnect(nowait=True)
        await self._pool.release(connection)

    async def close(self) -> None:
        """Stop reading; commands still in flight fail as cancelled."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self._break(self._generation, None)
