"""A fixed-bucket histogram, cheap enough to observe on every poll.

Buckets are cumulative on output only (Prometheus `le`); each observation increments one
slot, so a poll costs a short scan and no allocation.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["ROUND_TRIP_BUCKETS_S", "Histogram"]

ROUND_TRIP_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Seconds: a Modbus TCP meter answers in 5-50 ms, a gateway to RS-485 in 50-500 ms, a
timeout in whole seconds."""


@dataclass(slots=True)
class Histogram:
    bounds: tuple[float, ...] = ROUND_TRIP_BUCKETS_S
    """Upper bounds, increasing; a value above the last lands in the implicit `+Inf`."""
    counts: list[int] = field(default_factory=list)
    """Per bucket, not cumulative; one more slot than `bounds` for `+Inf`."""
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with (inf, count)."""
        running, out = 0, []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
