"""One order book's levels — pure, no I/O: price -> quantity per side, prices kept sorted.

Why floats, and only parsed ones: the upstream writes prices and quantities as decimal
strings (``"60000.01000000"``). ``parse_level`` turns each into the nearest float and nothing
here ever computes with them (no sums, no scaling), so ``orjson`` writes each back as the
shortest decimal that round-trips: the upstream's own value, exactly, for up to 15
significant digits. Equal decimal strings give equal floats, so a level is found again by
the price an update names however the upstream pads it.

Why sorted lists next to the dicts: ``top(n)`` is read up to 10 times a second per topic for
hundreds of books, while an update changes a handful of levels. A bisect insertion (or
deletion) per new (or removed) price keeps each side's prices in order, so a top-N read is a
slice and ``n`` dict lookups, never a sort. Bids are kept ascending like asks; their best
levels are read from the end of the list.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Final, TypeAlias

#: One parsed level: (price, quantity); a quantity of 0 in an update removes the price.
Level: TypeAlias = tuple[float, float]
#: One level as served: ``[price, quantity]`` (a list, as JSON writes it).
Row: TypeAlias = list[float]
#: Both sides, best first: (bids from the highest price down, asks from the lowest up).
Sides: TypeAlias = tuple[list[Row], list[Row]]

_EXCERPT: Final = 120


class BookFormatError(ValueError):
    """A level, an update or a snapshot that does not have the documented shape."""


def parse_level(raw: object) -> Level:
    """``["60000.01000000", "0.50000000"]`` -> ``(60000.01, 0.5)``.

    Strings are what Binance sends; JSON numbers are tolerated. Refused, with what was
    expected and what came: anything but a pair, a value that is not a decimal, a price that
    is not a positive finite number, a quantity that is negative or not finite."""
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise BookFormatError(
            f"expected a level [price, quantity] of two decimal strings, got {_excerpt(raw)}"
        )
    price = _decimal(raw[0], "price")
    quantity = _decimal(raw[1], "quantity")
    if not (price > 0 and math.isfinite(price)):
        raise BookFormatError(
            f"expected a level's price to be a positive finite decimal, got {raw[0]!r}"
        )
    if not (quantity >= 0 and math.isfinite(quantity)):
        raise BookFormatError(
            f"expected a level's quantity to be a finite decimal >= 0, got {raw[1]!r}"
        )
    return price, quantity


def parse_levels(raw: object, field: str) -> list[Level]:
    """A JSON array of levels (the ``b``/``a`` of an update, ``bids``/``asks`` of a snapshot)."""
    if not isinstance(raw, list):
        raise BookFormatError(f"expected {field!r} to be an array of levels, got {_excerpt(raw)}")
    out: list[Level] = []
    for index, item in enumerate(raw):
        try:
            out.append(parse_level(item))
        except BookFormatError as exc:
            raise BookFormatError(f"{field}[{index}]: {exc}") from None
    return out


class OrderBook:
    """Bids and asks of one instrument as price -> quantity, and ``seq``, the update id of the
    last change applied (its meaning is the upstream's: Binance's ``u``/``lastUpdateId``)."""

    __slots__ = ("_ask_prices", "_asks", "_bid_prices", "_bids", "seq")

    def __init__(
        self,
        bids: Iterable[Sequence[float]] = (),
        asks: Iterable[Sequence[float]] = (),
        seq: int = 0,
    ) -> None:
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_prices: list[float] = []
        self._ask_prices: list[float] = []
        self.seq = seq
        self.replace(bids, asks, seq)

    def replace(
        self, bids: Iterable[Sequence[float]], asks: Iterable[Sequence[float]], seq: int
    ) -> None:
        """The whole book at once (a snapshot): levels of quantity 0 are left out."""
        self._bids = {price: qty for price, qty in bids if qty}
        self._asks = {price: qty for price, qty in asks if qty}
        self._bid_prices = sorted(self._bids)
        self._ask_prices = sorted(self._asks)
        self.seq = seq

    def apply(self, bids: Iterable[Sequence[float]], asks: Iterable[Sequence[float]]) -> None:
        """Absolute quantities per price; 0 removes the level. Removing a price the book does
        not hold is normal (Binance: a level outside the snapshot's depth) and ignored.
        ``seq`` is the caller's to set: what an update id means is the upstream's rule."""
        _apply_side(self._bids, self._bid_prices, bids)
        _apply_side(self._asks, self._ask_prices, asks)

    def top(self, n: int) -> Sides:
        """The best ``n`` levels of each side, best first, as ``[price, quantity]`` lists."""
        if n <= 0:
            return [], []
        bids, asks = self._bids, self._asks
        return (
            [[price, bids[price]] for price in self._bid_prices[: -n - 1 : -1]],
            [[price, asks[price]] for price in self._ask_prices[:n]],
        )

    def snapshot(self) -> Sides:
        """Every level, best first."""
        return self.top(max(len(self._bid_prices), len(self._ask_prices)))

    def best(self) -> tuple[float | None, float | None]:
        """(best bid price, best ask price); None for an empty side."""
        return (
            self._bid_prices[-1] if self._bid_prices else None,
            self._ask_prices[0] if self._ask_prices else None,
        )

    def sizes(self) -> tuple[int, int]:
        """(bid levels, ask levels)."""
        return len(self._bid_prices), len(self._ask_prices)

    def __eq__(self, other: object) -> bool:
        """Same ``seq`` and the same levels (floats parsed from equal decimals are equal)."""
        if not isinstance(other, OrderBook):
            return NotImplemented
        return self.seq == other.seq and self._bids == other._bids and self._asks == other._asks

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        bid, ask = self.best()
        bids, asks = self.sizes()
        return f"OrderBook(seq={self.seq}, {bids} bids to {bid}, {asks} asks from {ask})"

    def decimals(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Every level as exact decimals, best first: for tests comparing with decimal strings."""
        bids, asks = self.snapshot()
        return decimal_rows(bids), decimal_rows(asks)


def decimal_rows(rows: Iterable[Sequence[float | str]]) -> list[tuple[Decimal, Decimal]]:
    """Levels as ``Decimal`` pairs: a float through ``str`` (its shortest round-trip decimal,
    what ``orjson`` writes), a string as written. Equal values compare equal whatever the
    padding (``Decimal("0.50000000") == Decimal("0.5")``)."""
    return [(_exact(price), _exact(qty)) for price, qty in rows]


def changes(before: Sides, after: Sides) -> Sides:
    """The ``[price, quantity]`` changes (quantity 0: gone) that turn the top-N ``before`` into
    ``after``, each side best first: a levels-mode top turned into a diff, or a test's oracle.
    Applied to a book holding exactly ``before``, they leave exactly ``after``."""
    return _side_changes(before[0], after[0], bids=True), _side_changes(
        before[1], after[1], bids=False
    )


def _side_changes(before: Sequence[Row], after: Sequence[Row], *, bids: bool) -> list[Row]:
    old = {price: qty for price, qty in before}
    out = [[price, qty] for price, qty in after if old.pop(price, None) != qty]
    if old:
        out += [[price, 0.0] for price in old]
        out.sort(key=lambda row: -row[0] if bids else row[0])
    return out


def _apply_side(
    levels: dict[float, float], prices: list[float], updates: Iterable[Sequence[float]]
) -> None:
    for price, qty in updates:
        if qty:
            if price not in levels:
                insort(prices, price)
            levels[price] = qty
        elif price in levels:
            del levels[price]
            del prices[bisect_left(prices, price)]


def _decimal(value: object, what: str) -> float:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise BookFormatError(f"expected a level's {what} to be a decimal string, got {value!r}")


def _exact(value: float | str) -> Decimal:
    return Decimal(value if isinstance(value, str) else str(value))


def _excerpt(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."
