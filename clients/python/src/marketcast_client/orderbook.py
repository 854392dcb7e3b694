"""``OrderBook``: a symbol's whole order book, kept exact from the ``orderbook`` diff stream.

The wire contract (docs/websocket.md, the ``orderbook`` family) in ``diff`` mode: the
subscribe reply carries the whole book and its ``seq`` (or null while the server's upstream
book is not joined yet: the book then comes as a ``reset`` update); each update carries the
changed levels (quantity 0: the price is gone) with ``prev_seq`` and ``seq``. A client that
holds ``seq`` S applies a diff whose ``prev_seq`` is S, replaces its book with a ``reset``,
skips a diff whose ``seq`` is at or before S (already applied), and treats anything else as a
gap: it missed a diff, and only a fresh book (unsubscribe, subscribe again) mends that.

``BookState`` is that rule, pure: feed it a reply's book and updates, it says what each one
did (``applied``, ``reset``, ``stale``, ``gap``, ``waiting``). ``OrderBook`` drives one with
the async client: it subscribes in diff mode, applies every update in a task of its own,
resubscribes on a gap (a bounded number of times in a row, with ``Backoff`` between attempts
after the first), and takes the book of every renewal after a reconnect as a new snapshot.

Why a renewal's book is applied at once, and the updates queued before it are dropped: the
client renews a subscription on every new connection, and the renewal's reply holds the book
as it is now. Updates of the previous connection still queued are older than that book (or
from another seq space altogether, after a server restart: the simulator starts a new book at
the same first id), so applying them, or judging them by ``seq``, could only be wrong. They
are counted when the renewal arrives (everything in the subscription's queue at that moment
came on an older connection) and dropped unread.

Numbers are the upstream's decimals as JSON numbers, read as floats: ``Level.price_decimal``
and ``Level.qty_decimal`` (``Decimal(repr(x))``) give the exact decimal back.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import random as _random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, Self, TypeAlias

from .backoff import Backoff
from .errors import ClientClosed, MarketcastError
from .models import BookSnapshot, OrderbookUpdatePayload
from .subscription import Subscribed

if TYPE_CHECKING:
    from .channels import OrderbookSubscription
    from .client import MarketcastClient

__all__ = [
    "BookChange",
    "BookGapError",
    "BookState",
    "ChangeKind",
    "Level",
    "OrderBook",
    "Outcome",
    "exact",
]

log = logging.getLogger("marketcast_client")

#: What ``BookState.apply`` did with an update: ``applied`` (a diff continuing the book),
#: ``reset`` (the whole book replaced), ``stale`` (a diff at or before the held ``seq``:
#: already applied, skipped), ``gap`` (a diff that does not continue the book: resubscribe),
#: ``waiting`` (a diff while no book is held, before the ``reset`` that brings one: skipped).
Outcome: TypeAlias = Literal["applied", "reset", "stale", "gap", "waiting"]

#: ``snapshot``: a subscribe reply's book (the first one, after a gap, after a reconnect);
#: ``reset``: an update flagged ``reset``; ``diff``: changed levels.
ChangeKind: TypeAlias = Literal["snapshot", "reset", "diff"]


def exact(value: float) -> Decimal:
    """The decimal a wire number stands for: the server writes each price and quantity as the
    shortest text of the upstream's decimal, which ``repr`` of the parsed float gives back."""
    return Decimal(repr(value))


class Level(NamedTuple):
    """One price level: ``price`` and ``qty`` as floats, exact as decimals on demand."""

    price: float
    qty: float

    @property
    def price_decimal(self) -> Decimal:
        return exact(self.price)

    @property
    def qty_decimal(self) -> Decimal:
        return exact(self.qty)


@dataclass(frozen=True, slots=True)
class BookChange:
    """One change of the book held, in the order it was applied.

    ``bids`` and ``asks`` are the whole book, best first, for a ``snapshot`` or a ``reset``;
    for a ``diff`` the changed levels as the server sent them (``qty`` 0: the price is gone).
    """

    kind: ChangeKind
    seq: int
    #: The ``seq`` a ``diff`` continued; None for a ``snapshot`` or a ``reset``.
    prev_seq: int | None
    #: The upstream time of the change, ms UTC, when the server knows it.
    time: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class BookGapError(MarketcastError):
    """The book could not be kept continuous: a gap right after each of ``max_resyncs``
    fresh books in a row."""


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MarketcastError(f"an order book level holds a non-number: {value!r}")
    return float(value)


def _levels(raw: Sequence[Sequence[Any]]) -> list[Level]:
    return [Level(_number(entry[0]), _number(entry[1])) for entry in raw]


class _Side:
    """One side of a book: quantity by price, and the prices kept sorted (ascending)."""

    __slots__ = ("_descending", "_prices", "_qty")

    def __init__(self, *, descending: bool) -> None:
        #: Bids: best is the highest price; asks: the lowest.
        self._descending = descending
        self._qty: dict[float, float] = {}
        self._prices: list[float] = []

    def __len__(self) -> int:
        return len(self._prices)

    def replace(self, levels: Sequence[Level]) -> None:
        self._qty = {level.price: level.qty for level in levels if level.qty != 0}
        self._prices = sorted(self._qty)

    def set(self, price: float, qty: float) -> None:
        """Set ``price``'s quantity; 0 removes it (an absent price is no error)."""
        if qty == 0:
            if self._qty.pop(price, None) is not None:
                del self._prices[bisect.bisect_left(self._prices, price)]
            return
        if price not in self._qty:
            bisect.insort(self._prices, price)
        self._qty[price] = qty

    def top(self, n: int | None) -> list[Level]:
        if n is not None and n < 0:
            raise ValueError(f"a level count must be >= 0: {n}")
        prices = self._prices
        if self._descending:
            chosen = prices[::-1] if n is None else prices[: -n - 1 : -1] if n else []
        else:
            chosen = prices if n is None else prices[:n]
        qty = self._qty
        return [Level(price, qty[price]) for price in chosen]

    def best(self) -> Level | None:
        if not self._prices:
            return None
        price = self._prices[-1] if self._descending else self._prices[0]
        return Level(price, self._qty[price])


class BookState:
    """A book in diff mode, pure: load a reply's book, ``apply`` each update in order.

    ``seq`` is None while no book is held (before the first ``load``, or after a reply
    whose book was null: the book then comes as a ``reset``).
    """

    def __init__(self) -> None:
        self._bids = _Side(descending=True)
        self._asks = _Side(descending=False)
        #: The ``seq`` of the book held, None while none is.
        self.seq: int | None = None
        #: The upstream time of its last change, ms UTC (None: unknown).
        self.time: int | None = None

    def load(self, book: BookSnapshot | None) -> None:
        """Hold ``book`` (a subscribe reply's), replacing whatever was held; None: hold
        nothing until a ``reset`` arrives."""
        if book is None:
            self._bids.replace([])
            self._asks.replace([])
            self.seq = self.time = None
            return
        self._replace(_levels(book.bids), _levels(book.asks), book.seq, book.time)

    def apply(self, update: OrderbookUpdatePayload) -> Outcome:
        """Apply one ``orderbook.update`` of a diff topic; what it did (``Outcome``). Nothing
        changes unless the outcome is ``applied`` or ``reset``."""
        if update.mode != "diff":
            raise ValueError(f"a {update.mode} update cannot be applied to a diff book")
        if update.reset:
            self._replace(_levels(update.bids), _levels(update.asks), update.seq, update.time)
            return "reset"
        if self.seq is None:
            return "waiting"
        if update.seq <= self.seq:
            return "stale"
        if update.prev_seq != self.seq:
            return "gap"
        bids, asks = _levels(update.bids), _levels(update.asks)
        for level in bids:
            self._bids.set(level.price, level.qty)
        for level in asks:
            self._asks.set(level.price, level.qty)
        self.seq, self.time = update.seq, update.time
        return "applied"

    def bids(self, n: int | None = None) -> list[Level]:
        """The best ``n`` bids (all when None), highest price first."""
        return self._bids.top(n)

    def asks(self, n: int | None = None) -> list[Level]:
        """The best ``n`` asks (all when None), lowest price first."""
        return self._asks.top(n)

    def best(self) -> tuple[Level | None, Level | None]:
        """The best bid and the best ask (None for an empty side)."""
        return self._bids.best(), self._asks.best()

    def depth(self) -> tuple[int, int]:
        """How many bid and ask levels are held."""
        return len(self._bids), len(self._asks)

    def _replace(
        self, bids: Sequence[Level], asks: Sequence[Level], seq: int, time: int | None
    ) -> None:
        self._bids.replace(bids)
        self._asks.replace(asks)
        self.seq, self.time = seq, time


class _End:
    """Queued after the last change when the book ended without an error."""


_END: Final = _End()


class OrderBook:
    """A symbol's whole order book, kept exact from the ``orderbook`` diff stream.

    Use it as an async context manager on a connected ``MarketcastClient``::

        async with OrderBook(client, "BTCUSDT") as book:
            bid, ask = book.best()
            async for change in book:  # BookChange: a snapshot first, then every change
                print(change.kind, book.seq, book.bids(5), book.asks(5))

    ``start()`` (what ``async with`` does) returns once the first reply is applied; from
    then on a task of the book's own applies every update, whether or not it is iterated.
    On a gap (a diff whose ``prev_seq`` is not the ``seq`` held) it unsubscribes and
    subscribes again for a fresh book: at once the first time, after a ``backoff`` delay on
    each further gap in a row, and raising ``BookGapError`` after ``max_resyncs`` gaps in a
    row (a diff continuing a fresh book ends a row). After a reconnect the client renews the
    subscription, and the renewal's book replaces the one held (``renewals`` counts them).

    ``synced`` is False while the book is not known to be current: the connection is down,
    a resubscription is in flight, or the server's book is not joined yet.
    """

    def __init__(
        self,
        client: MarketcastClient,
        symbol: str,
        *,
        backoff: Backoff | None = None,
        max_resyncs: int = 5,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if max_resyncs < 0:
            raise ValueError(f"max_resyncs must be >= 0: {max_resyncs}")
        self.symbol = symbol
        self._client = client
        self._backoff = backoff or Backoff()
        self._max_resyncs = max_resyncs
        self._random = random
        self._state = BookState()
        #: The subscription updates come from (a new one after every resubscription).
        self._subscription: OrderbookSubscription | None = None
        #: Stops the ``subscribed`` callback of that subscription.
        self._detach: Callable[[], None] | None = None
        #: Updates of an older connection still queued when a renewal arrived: dropped unread.
        self._stale = 0
        #: Gaps since the last diff that continued a fresh book: what ``max_resyncs`` bounds.
        self._gaps_in_a_row = 0
        self._resyncing = False
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._callbacks: list[Callable[[BookChange], None]] = []
        #: What iteration reads, from the first ``__aiter__`` on.
        self._queue: asyncio.Queue[BookChange | _End | BaseException] | None = None
        #: Set on every change, and when the book ends: wakes ``wait_synced``.
        self._changed = asyncio.Event()
        #: Why the book stopped by itself, if it did (``BookGapError``, ``FatalClose``, ...).
        self.error: BaseException | None = None
        #: Resubscriptions after a gap; renewals after a reconnect; updates skipped (stale,
        #: of an older connection, or before a ``reset`` brought a book).
        self.resyncs = 0
        self.renewals = 0
        self.skipped = 0

    # -- the book ---------------------------------------------------------------------------

    @property
    def seq(self) -> int | None:
        """The ``seq`` of the book held; None while none is (see ``BookState``)."""
        return self._state.seq

    @property
    def time(self) -> int | None:
        """The upstream time of the book's last change, ms UTC (None: unknown)."""
        return self._state.time

    def bids(self, n: int | None = None) -> list[Level]:
        """The best ``n`` bids (all when None), highest price first."""
        return self._state.bids(n)

    def asks(self, n: int | None = None) -> list[Level]:
        """The best ``n`` asks (all when None), lowest price first."""
        return self._state.asks(n)

    def best(self) -> tuple[Level | None, Level | None]:
        """The best bid and the best ask (None for an empty side)."""
        return self._state.best()

    @property
    def synced(self) -> bool:
        """True while the book held is the server's, continued by every diff since."""
        subscription = self._subscription
        return (
            not self._ended
            and not self._resyncing
            and self._state.seq is not None
            and subscription is not None
            and subscription.state == "subscribed"
        )

    @property
    def subscription(self) -> OrderbookSubscription | None:
        """The subscription the book follows now (a new one after each resubscription)."""
        return self._subscription

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> Self:
        """Subscribe in diff mode and apply the reply's book; updates are applied from then
        on. Raises what ``subscribe_orderbook`` raises (``SubscriptionRefused``, ...)."""
        if self._task is not None or self._ended:
            raise RuntimeError("start() was already called")
        await self._subscribe()
        self._task = asyncio.create_task(self._run(), name=f"orderbook-{self.symbol}")
        return self

    async def close(self) -> None:
        """Unsubscribe and stop; iteration ends after the changes already queued."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        subscription = self._subscription
        self._finish(None)
        if subscription is not None and subscription.active:
            with contextlib.suppress(MarketcastError, TimeoutError):
                await subscription.unsubscribe()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_synced(self) -> None:
        """Return once ``synced`` holds (at once if it does); raise if the book ended."""
        while not self.synced:
            if self._ended:
                raise self.error or ClientClosed("the order book is closed")
            self._changed.clear()
            await self._changed.wait()

    # -- changes ------------------------------------------------------------------------------

    def on_change(self, callback: Callable[[BookChange], None]) -> Callable[[], None]:
        """Call ``callback`` with every change, right after it is applied (so ``seq`` and
        the levels are the book just after it); returns a function that stops the calls."""
        self._callbacks.append(callback)
        callbacks = self._callbacks
        return lambda: callbacks.remove(callback) if callback in callbacks else None

    def __aiter__(self) -> Self:
        """Iterate the changes: the book held when iteration began (a ``snapshot``), then
        every change. Changes are queued from the first ``__aiter__`` until read."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            if self._state.seq is not None:
                self._queue.put_nowait(self._whole("snapshot"))
            if self._ended:
                self._queue.put_nowait(self.error or _END)
        return self

    async def __anext__(self) -> BookChange:
        if self._queue is None:
            self.__aiter__()
        assert self._queue is not None
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)
            raise item
        return item

    # -- internals ----------------------------------------------------------------------------

    async def _subscribe(self) -> None:
        subscription = await self._client.subscribe_orderbook(self.symbol, mode="diff")
        self._subscription = subscription
        self._stale = 0
        self._resyncing = False
        self._detach = subscription.on(
            "subscribed", lambda event: self._renewed(subscription, event)
        )
        self._load(subscription.reply.book)

    def _renewed(self, subscription: OrderbookSubscription, event: Subscribed) -> None:
        """In the client's reader: the subscription was renewed on a new connection."""
        if subscription is not self._subscription or not isinstance(event, Subscribed):
            return
        if not event.resubscribed:
            return
        self.renewals += 1
        # Everything queued now came on an older connection (module docstring).
        self._stale = subscription._queue.qsize()
        self._load(subscription.reply.book)

    def _load(self, book: BookSnapshot | None) -> None:
        self._state.load(book)
        if book is None:
            log.info("%s: the server's book is not joined yet; waiting for its reset", self.symbol)
            self._changed.set()
            return
        self._emit(self._whole("snapshot"))

    def _whole(self, kind: ChangeKind) -> BookChange:
        seq = self._state.seq
        assert seq is not None
        bids, asks = tuple(self._state.bids()), tuple(self._state.asks())
        return BookChange(kind, seq, None, self._state.time, bids, asks)

    def _emit(self, change: BookChange) -> None:
        for callback in list(self._callbacks):
            try:
                callback(change)
            except Exception:
                log.exception("%s: an order book callback failed", self.symbol)
        if self._queue is not None:
            self._queue.put_nowait(change)
        self._changed.set()

    async def _run(self) -> None:
        try:
            while True:
                subscription = self._subscription
                assert subscription is not None
                try:
                    update = await anext(subscription)
                except StopAsyncIteration:
                    self._finish(None)  # unsubscribed, or the client was closed
                    return
                if self._stale:
                    self._stale -= 1
                    self.skipped += 1
                    continue
                outcome = self._state.apply(update)
                if outcome == "applied":
                    self._gaps_in_a_row = 0
                    bids, asks = tuple(_levels(update.bids)), tuple(_levels(update.asks))
                    self._emit(
                        BookChange("diff", update.seq, update.prev_seq, update.time, bids, asks)
                    )
                elif outcome == "reset":
                    self._emit(self._whole("reset"))
                elif outcome == "gap":
                    await self._resync(update)
                else:
                    self.skipped += 1
        except ClientClosed:
            self._finish(None)
        except Exception as error:
            self._finish(error)
            # Nothing reads the subscription any more: stop the server sending it.
            subscription = self._subscription
            if subscription is not None and subscription.active:
                with contextlib.suppress(MarketcastError, TimeoutError):
                    await subscription.unsubscribe()

    async def _resync(self, update: OrderbookUpdatePayload) -> None:
        """A gap: unsubscribe, wait (after the first gap in a row), subscribe again."""
        if self._gaps_in_a_row >= self._max_resyncs:
            raise BookGapError(
                f"{self.symbol}: a gap right after each of {self._gaps_in_a_row} fresh books in "
                f"a row (holding seq {self._state.seq}, got prev_seq {update.prev_seq})"
            )
        attempt = self._gaps_in_a_row
        self._gaps_in_a_row += 1
        self.resyncs += 1
        log.warning(
            "%s: order book gap (holding seq %s, got prev_seq %s seq %d); resubscribing",
            self.symbol,
            self._state.seq,
            update.prev_seq,
            update.seq,
        )
        old = self._subscription
        self._release()
        self._resyncing = True
        self._changed.set()
        if old is not None:
            await old.unsubscribe()
        if attempt:
            await asyncio.sleep(self._backoff.delay(attempt - 1, self._random()))
        await self._subscribe()

    def _release(self) -> None:
        if self._detach is not None:
            self._detach()
            self._detach = None

    def _finish(self, error: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        if error is not None:
            self.error = error
            log.error("%s: the order book stopped: %s", self.symbol, error)
        self._release()
        if self._queue is not None:
            self._queue.put_nowait(error if error is not None else _END)
        self._changed.set()
