"""Capped, jittered exponential backoff for reconnects.

Full jitter (a uniform draw between the base delay and the current cap) spreads the
reconnects of many agents after a park-wide outage, so a broker or a gateway that comes back
is not hit by all of them in the same second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    _attempt: int = 0

    def next_delay_s(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        cap = min(self.max_s, self.initial_s * self.factor**self._attempt)
        self._attempt += 1
        return self.rng.uniform(min(self.initial_s, cap), cap)

    def reset(self) -> None:
        """Call after a success, so the next failure starts small again."""
        self._attempt = 0

    @property
    def failures(self) -> int:
        return self._attempt
