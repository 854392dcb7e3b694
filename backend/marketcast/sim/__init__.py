"""Wire-compatible fake upstreams (Binance, Twelve Data) for offline development and tests.

``marketcast fake-upstreams`` runs them; programs and tests use the classes directly.
"""

from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import FakeClock, Market
from marketcast.sim.twelvedata import FakeTwelveData

__all__ = ["FakeBinance", "FakeClock", "FakeTwelveData", "Market"]
