"""One subscribed topic: its state and events, the delivery of its updates, and recovery.

Why recovery lives in the subscription and not in the caller: after a reconnect a bars
subscription asks for ``since`` = its last closed bar's time + 1 ms, so the server's reply holds
exactly the bars that closed meanwhile (docs/websocket.md, "Recovery"); they are passed on in
order, then the live stream continues. As a second guard against a server that replays more
than asked (a restarted one, a ``stale`` repeat), every bar goes through one rule: a bar at or
before the newest closed bar passed on, or older than the newest bar passed on, is dropped. So
the caller sees each closed bar once, in order, with no gap that the server could fill.
A family ordered by ``id`` (trades) resumes with the largest snapshot instead, and passes on
only the ids after the last one it yielded; a snapshot that does not reach back that far is
reported as ``recovered`` False.

Everything here runs in the client's reader task (``connection.Connection``), synchronously, so
a subscription needs no lock; ``core.ClientCore`` sends its requests and routes its updates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Self, TypeAlias, TypeVar

from pydantic import BaseModel

from .errors import ClientClosed, MarketcastError, ServerError

if TYPE_CHECKING:
    # Only for annotations: ``core`` imports this module at run time.
    from .core import ClientCore

__all__ = [
    "Family",
    "Recovery",
    "ReplyT",
    "Subscribed",
    "Subscription",
    "SubscriptionErrorEvent",
    "SubscriptionEvent",
    "SubscriptionState",
    "Unsubscribed",
    "UpdateT",
]

log = logging.getLogger("marketcast_client")

ReplyT = TypeVar("ReplyT", bound=BaseModel)
UpdateT = TypeVar("UpdateT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Family(Generic[ReplyT, UpdateT]):
    """Which models carry one channel family's messages (generated into ``channels.py``)."""

    name: str
    #: The envelope of ``<family>.subscribe``.
    subscribe: type[BaseModel]
    #: The payload of ``<family>.subscribe.response``.
    reply: type[ReplyT]
    #: The envelope and payload of ``<family>.unsubscribe``, when the family has one.
    unsubscribe: type[BaseModel] | None
    unsubscribe_payload: type[BaseModel] | None
    #: The ``type`` of its updates, and their payload.
    update_type: str
    update: type[UpdateT]
    #: The reply field holding bars when the family resumes with ``since`` (``bars``), or
    #: items ordered by ``id`` when it resumes with a snapshot (``trades``).
    replay_field: str | None
    #: For a family that resumes with a snapshot (``trades``): its size, the largest the
    #: server allows; None for one that resumes with ``since`` or not at all.
    resume_snapshot: int | None = None


@dataclass(frozen=True, slots=True)
class Recovery:
    """One resubscription after a reconnect, as the server answered it."""

    #: The ``since`` asked for (bars), or the last id passed on before it (trades).
    since: int
    #: The server's ``recovered``: False means bars before the first one returned are missing
    #: (reload them over REST); None when the server did not say.
    recovered: bool | None
    #: How many of the reply's bars were new, and passed on.
    delivered: int


#: ``subscribing`` until the server confirms (again after every reconnect), ``subscribed``,
#: and ``unsubscribed`` for good (unsubscribed, refused, or the client stopped).
SubscriptionState = Literal["subscribing", "subscribed", "unsubscribed"]


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The server confirmed the subscription: the first time, and after every reconnect."""

    #: False when bars are missing: the server could not fill the gap back to ``since``
    #: (reload that history over REST); True otherwise, also when nothing needed recovering.
    recovered: bool
    #: The bars this reply brought (the snapshot, or the bars missed while disconnected).
    bars: list[Any]
    #: True for a renewal after a reconnect.
    resubscribed: bool


@dataclass(frozen=True, slots=True)
class SubscriptionErrorEvent:
    """A subscribe failed: ``code`` is the server's error code, or ``timeout``."""

    code: str
    message: str
    #: True when the client tries again by itself; False when the subscription ended.
    will_retry: bool
    error: BaseException


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The subscription ended for good."""

    #: ``client``: ``unsubscribe()``; ``refused``: the server refused it; ``closed``: the
    #: client was closed or stopped (``error`` says why when it stopped by itself).
    reason: Literal["client", "refused", "closed"]
    error: BaseException | None


SubscriptionEvent: TypeAlias = Subscribed | SubscriptionErrorEvent | Unsubscribed
_EVENT_NAMES: Final[Mapping[str, type[SubscriptionEvent]]] = {
    "subscribed": Subscribed,
    "error": SubscriptionErrorEvent,
    "unsubscribed": Unsubscribed,
}


class _End:
    """Queued after the last update of a subscription that ended without an error."""


_END: Final = _End()


class Subscription(Generic[ReplyT, UpdateT]):
    """One subscribed topic: iterate it (``async for``) for its typed updates.

    It survives reconnects: the client subscribes it again on every new connection. Iteration
    ends when it is unsubscribed or the client is closed, and raises the error that ended it
    otherwise (``FatalClose``, ``HandshakeRefused``, a ``ServerError`` when a resubscription
    was refused).
    """

    def __init__(
        self, client: ClientCore, family: Family[ReplyT, UpdateT], request: BaseModel, key: str
    ) -> None:
        #: Which models carry its messages, and whether it resumes with ``since``.
        self.family = family
        #: The subscribe payload as the caller asked for it.
        self.request = request
        #: The server's topic, once it replied (updates carry it).
        self.topic: str | None = None
        #: Every resubscription after a reconnect, oldest first.
        self.recoveries: list[Recovery] = []
        #: The client that sends its requests and routes its updates to it.
        self._client = client
        #: Its local name (``core._identity``): one subscription per topic, known before the
        #: server names the topic.
        self._key = key
        self._reply: ReplyT | None = None
        #: What iteration reads: updates, then ``_END`` or the error that ended it (put back
        #: when read, so every later ``__anext__`` ends the same way).
        self._queue: asyncio.Queue[UpdateT | _End | BaseException] = asyncio.Queue()
        #: Done at the first reply (what ``subscribe_<family>`` awaits), or failed when the
        #: subscription ended first; once done, a new connection resumes rather than sending
        #: the caller's request again.
        self._established: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: False once it ended for good: nothing more is queued, emitted or renewed.
        self._active = True
        #: The number of the connection this was last subscribed on.
        self._sent_on: int | None = None
        #: The ``since`` of the request in flight, if it resumes: recorded as a ``Recovery``
        #: when answered, and tells a refused resume from a refused subscription.
        self._resumed_since: int | None = None
        #: Set when the server refused the last resume: the next request goes without ``since``.
        self._skip_resume = False
        #: The times of the newest bar and the newest closed bar passed on: the continuity
        #: rule's bounds, and where a resume starts.
        self._last_time: int | None = None
        self._last_closed: int | None = None
        #: For a family ordered by ``id`` (trades): the newest id passed on.
        self._last_id: int | None = None
        self._state: SubscriptionState = "subscribing"
        #: Makes every ``Subscribed`` after the first one a renewal (``resubscribed``).
        self._confirmed_once = False
        #: The callbacks of each event, by its name in ``_EVENT_NAMES``.
        self._callbacks: dict[str, list[Callable[[Any], None]]] = {
            name: [] for name in _EVENT_NAMES
        }

    @property
    def state(self) -> SubscriptionState:
        """``subscribing``, ``subscribed`` or ``unsubscribed`` (see ``SubscriptionState``)."""
        return self._state

    def on(self, event: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback`` on every ``subscribed`` (``Subscribed``), ``error``
        (``SubscriptionErrorEvent``) or ``unsubscribed`` (``Unsubscribed``) event, in the
        client's reader, in order with the updates; returns a function that stops the calls.
        ``subscribed`` of the first reply has already happened when ``subscribe_<family>``
        returns: read ``reply`` for it."""
        if event not in self._callbacks:
            raise ValueError(f"no such event {event!r}: one of {', '.join(_EVENT_NAMES)}")
        callbacks = self._callbacks[event]
        callbacks.append(callback)
        return lambda: callbacks.remove(callback) if callback in callbacks else None

    def _emit(self, event: SubscriptionEvent) -> None:
        name = next(name for name, kind in _EVENT_NAMES.items() if isinstance(event, kind))
        for callback in list(self._callbacks[name]):
            try:
                callback(event)
            except Exception:
                log.exception("%s: a %s callback failed", self._key, name)

    def _lost(self) -> None:
        if self._active:
            self._state = "subscribing"

    @property
    def reply(self) -> ReplyT:
        """The latest ``subscribe.response`` payload; the first one holds the snapshot."""
        if self._reply is None:
            raise RuntimeError("the server has not replied to this subscription yet")
        return self._reply

    @property
    def active(self) -> bool:
        return self._active

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> UpdateT:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)
            raise item
        return item

    async def unsubscribe(self) -> None:
        """Stop the stream; iteration ends after the updates already received."""
        await self._client._unsubscribe(self)

    # -- used by the client, in the reader task ------------------------------------------

    def _next_request(self) -> BaseModel:
        """What to send on a new connection: the caller's request the first time, then (for a
        family that resumes) the same topic with ``since`` after what was passed on."""
        self._resumed_since = None
        if not self._established.done() or self.family.replay_field is None:
            return self.request
        changes: dict[str, Any] = {}
        if self.family.resume_snapshot is not None:
            # The newest items again; the continuity rule passes on those after ``_last_id``.
            self._resumed_since = self._last_id
            return self.request.model_copy(update={"snapshot": self.family.resume_snapshot})
        if "snapshot" in type(self.request).model_fields:
            changes["snapshot"] = 0
        # After the last closed bar: the open bar seen last comes again, closed by now.
        since = self._last_closed + 1 if self._last_closed is not None else self._last_time
        if self._skip_resume:
            self._skip_resume = False
            changes["since"] = None
        elif since is not None:
            changes["since"] = self._resumed_since = since
        return self.request.model_copy(update=changes)

    def _apply_reply(self, message: BaseModel) -> None:
        payload = getattr(message, "payload", None)
        if not isinstance(payload, self.family.reply):
            raise MarketcastError(f"unexpected reply to {self.family.name}.subscribe: {message}")
        status = getattr(payload, "status", "ok")
        if status != "ok":
            raise ServerError(str(status), str(getattr(payload, "message", "")))
        if not self._active:
            return
        topic = getattr(payload, "topic", None)
        if isinstance(topic, str):
            holder = self._client._by_topic.get(topic)
            if holder is not None and holder is not self and holder.active:
                # The same topic by another spelling (``1D`` and ``D``): the server keeps one
                # stream, so must we.
                raise ValueError(f"already subscribed to {topic}: iterate that subscription")
            self._client._route(self, topic)
        self._reply = payload
        replay = self.family.replay_field
        items = list(getattr(payload, replay, None) or []) if replay is not None else []
        recovered = getattr(payload, "recovered", None)
        if not self._established.done():
            # The caller's own snapshot: it stays in ``reply``; only remember how far it went.
            for item in items:
                self._accept(item)
            self._established.set_result(None)
            self._confirm(recovered is not False, items)
            return
        if self.family.resume_snapshot is not None:
            recovered = self._reaches_back(items)
        delivered: list[Any] = []
        for item in items:
            if self._accept(item):
                self._queue.put_nowait(self._as_update(item, payload))
                delivered.append(item)
        self._confirm(recovered is not False, delivered)
        if self._resumed_since is not None:
            self.recoveries.append(
                Recovery(
                    self._resumed_since,
                    recovered if isinstance(recovered, bool) else None,
                    len(delivered),
                )
            )
            if recovered is False:
                log.warning(
                    "%s: the server could not recover every bar since %d; reload history over"
                    " REST for the missing ones",
                    self.topic,
                    self._resumed_since,
                )

    def _confirm(self, recovered: bool, bars: list[Any]) -> None:
        self._state = "subscribed"
        resubscribed = self._confirmed_once
        self._confirmed_once = True
        self._emit(Subscribed(recovered, list(bars), resubscribed))

    def _deliver(self, update: UpdateT) -> None:
        if self._active and (self.family.replay_field is None or self._accept(update)):
            self._queue.put_nowait(update)

    def _reaches_back(self, items: list[Any]) -> bool:
        """Whether a resumed snapshot holds every id after the last one passed on (an empty
        one, or one starting later, leaves a gap only a fresh subscription can mend)."""
        if self._last_id is None:
            return True
        ids = [getattr(item, "id", None) for item in items]
        return any(isinstance(i, int) and i <= self._last_id + 1 for i in ids)

    def _accept(self, item: object) -> bool:
        """The continuity rule (module docstring): False for a bar or trade already passed on."""
        if self.family.resume_snapshot is not None:
            ident = getattr(item, "id", None)
            if not isinstance(ident, int):
                return True
            if self._last_id is not None and ident <= self._last_id:
                return False
            self._last_id = ident
            return True
        time = getattr(item, "time", None)
        closed = getattr(item, "closed", None)
        if not isinstance(time, int) or not isinstance(closed, bool):
            return True
        if self._last_closed is not None and time <= self._last_closed:
            return False
        if self._last_time is not None and time < self._last_time:
            return False
        self._last_time = time
        if closed:
            self._last_closed = time
        return True

    def _as_update(self, item: BaseModel, reply: BaseModel) -> UpdateT:
        """A replayed bar as the update the stream would have carried: the bar's fields plus
        what routes it (topic, symbol from the reply; resolution from the request's params)."""
        data = item.model_dump()
        params = getattr(self.request, "params", None)
        for name in self.family.update.model_fields:
            if name in data:
                continue
            for source in (reply, params):
                if source is not None and name in type(source).model_fields:
                    data[name] = getattr(source, name)
                    break
        return self.family.update.model_validate(data)

    def _end(
        self,
        error: BaseException | None,
        reason: Literal["client", "refused", "closed"] = "closed",
    ) -> None:
        if not self._active:
            return
        self._active = False
        self._state = "unsubscribed"
        self._emit(Unsubscribed(reason, error))
        if not self._established.done():
            self._established.set_exception(error if error is not None else ClientClosed())
            # Whoever awaits it sees the error; nobody else must be told it went unseen.
            self._established.exception()
        self._queue.put_nowait(error if error is not None else _END)
