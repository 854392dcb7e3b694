"""Time the server process spends in the garbage collector, per generation.

Why measure it: py-spy charges a collection to whatever line happened to allocate when it
started, so a fan-out profile can show ``Event.set`` or ``call_soon`` as hot when the cost is
really the collector walking every connection's objects. ``gc.callbacks`` gives the real
figure at the price of two clock reads per collection.
"""

from __future__ import annotations

import gc
import time
from typing import Any


class GcMeter:
    """Accumulates collector time and counts while installed."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def snapshot(self) -> dict[str, Any]:
        return {
            "gc_ms": [round(s * 1000, 1) for s in self.seconds],
            "gc_collections": list(self.collections),
        }

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = int(info.get("generation", 0))
        self.seconds[generation] += time.perf_counter() - self._started
        self.collections[generation] += 1
