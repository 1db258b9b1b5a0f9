"""An electric furnace whose batch sequencer runs non-interruptible heat-treatment batches."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from .base import Controllable, Value
from .profiles import PARK_ZONE

__all__ = ["QUEUE_DEPTH", "Batch", "BatchFurnace"]

QUEUE_DEPTH = 6
"""Waiting batches the sequencer shows, earliest deadline first (a recipe queue's table)."""


@dataclass(frozen=True)
class Batch:
    release: datetime
    """When the load is on the charging table and may start (aware)."""
    duration_s: float
    kw: float
    deadline: datetime
    """When it must be out of the furnace (aware)."""


@dataclass
class BatchFurnace(Controllable):
    """While enabled and idle, the sequencer starts the released batch with the earliest
    deadline. A started batch runs to its end whatever `enable` says (the load would be
    spoilt): an inhibit only holds back the next batch, which is how a planner keeps every
    start its own decision. The sequencer shows its queue, earliest deadline first, in
    `QUEUE_DEPTH` entries of duration, deadline and power. Each local day's batches are drawn
    from the seed and the date, whenever the day is reached.
    """

    rated_kw: float = 140.0
    idle_kw: float = 3.0
    batches_per_day: tuple[int, int] = (3, 5)
    ambient_c: float = 30.0
    soak_c: float = 850.0
    seed: int = 1
    zone_c: list[float] = field(default_factory=lambda: [30.0, 30.0])
    queue: list[Batch] = field(default_factory=list)
    active: Batch | None = None
    remaining_s: float = 0.0
    batches_done: int = 0
    deadline_missed: int = 0
    deadline_late_s: float = 0.0
    _days: set[date] = field(default_factory=set, repr=False)
    _now: datetime | None = field(default=None, repr=False)

    def day_batches(self, day: date) -> list[Batch]:
        """The batches the plant releases on a local day: a pure function of seed and date."""
        rng = random.Random(f"{self.seed}/{day.isoformat()}")
        midnight = datetime.combine(day, time(0), PARK_ZONE)
        batches = []
        for _ in range(rng.randint(*self.batches_per_day)):
            release = midnight + timedelta(minutes=5 * rng.randint(5 * 12, 19 * 12))
            duration_s = 300.0 * rng.randint(12, 36)  # 1 to 3 hours
            slack = timedelta(minutes=5 * rng.randint(36, 120))  # 3 to 10 hours
            batches.append(
                Batch(
                    release=release,
                    duration_s=duration_s,
                    kw=round(self.rated_kw * rng.uniform(0.7, 1.0), 1),
                    deadline=release + timedelta(seconds=duration_s) + slack,
                )
            )
        return sorted(batches, key=lambda b: b.release)

    def waiting(self) -> list[Batch]:
        """Released and not started, earliest deadline first."""
        if self._now is None:
            return []
        now = self._now
        return sorted((b for b in self.queue if b.release <= now), key=lambda b: b.deadline)

    def power_kw(self) -> float:
        return self.active.kw if self.active is not None else self.idle_kw

    def _advance(self, dt_s: float, now: datetime) -> None:
        self._now = now
        day = now.astimezone(PARK_ZONE).date()
        if day not in self._days:
            self._days.add(day)
            self.queue.extend(self.day_batches(day))
        if self.active is not None:
            self.remaining_s -= dt_s
            if self.remaining_s <= 0:
                self._finish(self.active, now)
        if self.active is None and self.enabled and (ready := self.waiting()):
            self.active = ready[0]
            self.queue.remove(ready[0])
            self.remaining_s = ready[0].duration_s
        target = self.soak_c if self.active is not None else self.ambient_c
        for zone, lag in enumerate((0.002, 0.0015)):
            self.zone_c[zone] += (target - self.zone_c[zone]) * min(1.0, lag * dt_s)

    def _finish(self, batch: Batch, now: datetime) -> None:
        self.batches_done += 1
        late_s = (now - batch.deadline).total_seconds()
        if late_s > 0:
            self.deadline_missed += 1
            self.deadline_late_s += late_s
        self.active = None
        self.remaining_s = 0.0

    def values(self) -> dict[str, Value]:
        ready = self.waiting()
        following = ready[0] if ready else None
        shown = self.active or following
        return {
            "batch_active": self.active is not None,
            "batch_remaining_s": max(0.0, self.remaining_s),
            "batches_waiting": len(ready),
            "next_batch_duration_s": following.duration_s if following else 0.0,
            "next_deadline_in_s": (
                (following.deadline - self._now).total_seconds() if following and self._now else 0.0
            ),
            "batch_kw": shown.kw if shown else 0.0,
            **self._queue_values(ready),
            "zone1_temp_c": self.zone_c[0],
            "zone2_temp_c": self.zone_c[1],
            **self._contract_values(),
        }

    def _queue_values(self, ready: list[Batch]) -> dict[str, Value]:
        """The queue's table: unused entries read 0."""
        values: dict[str, Value] = {}
        for k in range(1, QUEUE_DEPTH + 1):
            batch = ready[k - 1] if k <= len(ready) else None
            values[f"queue_{k}_duration_s"] = batch.duration_s if batch else 0.0
            values[f"queue_{k}_deadline_in_s"] = (
                (batch.deadline - self._now).total_seconds() if batch and self._now else 0.0
            )
            values[f"queue_{k}_kw"] = batch.kw if batch else 0.0
        return values

    def violations(self) -> dict[str, float]:
        return {
            "deadline_missed": float(self.deadline_missed),
            "deadline_late_s": self.deadline_late_s,
        }
