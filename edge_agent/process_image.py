"""The latest reading of every point, and who wants to hear of new ones.

Pollers write here; the summariser (and later the optimiser) read. A GOOD value older than
its point's stale age is reported STALE when read, so a device that silently stopped
updating can never pass an old value off as fresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from .model import PointId, Quality, Reading

__all__ = ["ProcessImage"]

Listener = Callable[[list[Reading]], None]


class ProcessImage:
    def __init__(self, stale_after: Mapping[PointId, timedelta] | None = None) -> None:
        self._latest: dict[PointId, Reading] = {}
        self._stale_after = dict(stale_after or {})
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """`listener` is called, synchronously, with every batch written."""
        self._listeners.append(listener)

    def update(self, readings: list[Reading]) -> None:
        for reading in readings:
            self._latest[reading.point] = reading
        for listener in self._listeners:
            listener(readings)

    def retain(self, stale_after: Mapping[PointId, timedelta]) -> None:
        """The site's points after a reload: their stale ages replace the old ones, and a
        point not among them (its device or point was removed) leaves the image."""
        self._stale_after = dict(stale_after)
        for point in [p for p in self._latest if p not in self._stale_after]:
            del self._latest[point]

    def mark_bad(self, points: Iterable[PointId], at: datetime, error: str) -> None:
        """The device is lost: every point of it is BAD from `at`."""
        self.update([Reading.bad(p, at, error) for p in points])

    def get(self, point: PointId, now: datetime) -> Reading | None:
        reading = self._latest.get(point)
        if reading is None or reading.quality is not Quality.GOOD:
            return reading
        limit = self._stale_after.get(point)
        if limit is not None and now - reading.at > limit:
            return replace(
                reading,
                value=None,
                quality=Quality.STALE,
                error=f"no new value for {(now - reading.at).total_seconds():.0f} s",
            )
        return reading

    def snapshot(self, now: datetime) -> dict[PointId, Reading]:
        """Every point as of `now`, staleness applied; a plain dict the caller may keep."""
        return {p: r for p in self._latest if (r := self.get(p, now)) is not None}
