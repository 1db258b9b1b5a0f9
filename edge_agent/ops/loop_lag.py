"""How late the event loop runs what is due: the one figure that shows something blocking it.

Every poller, the limiter, the summariser and the publisher share one event loop; a step
that holds it (a solve, a large JSON, a slow disk) delays all of them at once, on a
gateway's slow core by seconds. A ticker asks to be woken every `interval_s` and records how
late it was woken, in real time (a simulated clock's time is not what a blocked loop
loses), as a histogram for `/metrics`; a lag past `warn_s` is logged with its size.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .histogram import Histogram

__all__ = ["LAG_BUCKETS_S", "LoopLag"]

log = logging.getLogger(__name__)

LAG_BUCKETS_S: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Seconds: a healthy loop answers within a millisecond or two; 50 ms is felt by a 100 ms
poll; a second is a missed poll."""


class LoopLag:
    def __init__(
        self,
        *,
        interval_s: float = 0.25,
        warn_s: float | None = 0.1,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """`monotonic`: the real clock the lag is measured on (the loop's by default).
        `warn_s` None: never log (a simulated day keeps its loop busy on purpose)."""
        self.interval_s = interval_s
        self.warn_s = warn_s
        self._monotonic = monotonic
        self.histogram = Histogram(LAG_BUCKETS_S)
        self.max_s = 0.0
        self.ticked = asyncio.Event()
        """Set at each tick (for a test that waits for one)."""

    def observe(self, lag_s: float) -> None:
        lag_s = max(0.0, lag_s)
        self.histogram.observe(lag_s)
        self.max_s = max(self.max_s, lag_s)
        if self.warn_s is not None and lag_s > self.warn_s:
            log.warning(
                "the event loop ran %.0f ms late (more than %.0f ms): something held it, "
                "and every poll and control cycle waited",
                lag_s * 1000,
                self.warn_s * 1000,
                extra={"fold_as": "the event loop ran late"},
            )

    async def run(self) -> None:
        """Tick until cancelled."""
        now = self._monotonic or asyncio.get_running_loop().time
        while True:
            due = now() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.observe(now() - due)
            self.ticked.set()
