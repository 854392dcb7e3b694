"""How prices and sizes are written on the wire, in the words every family's docs repeat.

Why a module of its own: the rule is the same for every family that carries prices or sizes
(``bars``, ``quotes``, ``trades``), and a client reads it in each family's channel description
of the AsyncAPI document; one sentence here keeps the three from drifting apart. The rule
itself is applied where values are made: the feeds pass the upstream's decimals on as sent
and compute sums exactly (``feeds.aggregate.decimal_sum``); docs/websocket.md, "Numbers on
the wire", explains it.
"""

from __future__ import annotations

from typing import Final

#: Appended to the channel description of every family whose messages carry prices or sizes.
NUMBERS_ON_THE_WIRE: Final = (
    "Prices and sizes are JSON numbers, each the shortest text of the upstream's decimal "
    "value, with at most the instrument's decimals (prices its price decimals, `volume` and "
    "`quantity` its size decimals) and no binary noise: treat them as decimals, and parse "
    'them with a decimal library where exactness matters (see docs/websocket.md, "Numbers on '
    'the wire").'
)
