"""The order book, pure and I/O-free: levels kept sorted, Binance's diff-stream join, and a
simulated book with the faults a real upstream shows.

- ``levels``: ``OrderBook`` (price -> quantity per side, prices sorted incrementally so a
  top-N read costs no sort) and ``parse_level``, the one place decimal strings become floats;
- ``binance_sync``: the state machine that joins ``<symbol>@depth@100ms`` to a REST snapshot
  by update ids and says, as values, what happened;
- ``sim_book``: a deterministic book around a mid price that emits Binance-shaped diffs and
  snapshots, and ``FaultyDepthStream``, which drops, repeats and reorders them.

Nothing here imports the rest of marketcast: feeds, the simulator and the fake Binance drive
these cores through thin adapters.
"""
