"""Change reporting with deadbands: which readings are news.

A meter polled every second repeats itself; a consumer of changes (a live view, an event
stream to the park) wants only the readings that moved by more than the point's deadband
since the last one reported, and every change of quality: a point going BAD, or coming back,
is always news. Without a deadband, every change of value is news.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .model import PointId, Quality, Reading

__all__ = ["ChangeFilter", "Deadband"]


@dataclass(frozen=True, slots=True)
class Deadband:
    absolute: float | None = None
    percent: float | None = None
    """Of the last reported value."""

    def exceeded(self, last: float, value: float) -> bool:
        delta = abs(value - last)
        if self.absolute is not None and delta <= self.absolute:
            return False
        return not (self.percent is not None and delta <= abs(last) * self.percent / 100)


class ChangeFilter:
    def __init__(self, deadbands: dict[PointId, Deadband]) -> None:
        self._deadbands = deadbands
        self._reported: dict[PointId, Reading] = {}
        self._listeners: list[Callable[[list[Reading]], None]] = []
        self.suppressed = 0
        """Readings that were not news: what the deadbands saved."""

    def subscribe(self, listener: Callable[[list[Reading]], None]) -> None:
        self._listeners.append(listener)

    def on_readings(self, readings: list[Reading]) -> None:
        """ProcessImage listener: pass on the readings that are news."""
        news = [r for r in readings if self._is_news(r)]
        self.suppressed += len(readings) - len(news)
        for reading in news:
            self._reported[reading.point] = reading
        if news:
            for listener in self._listeners:
                listener(news)

    def _is_news(self, reading: Reading) -> bool:
        last = self._reported.get(reading.point)
        if last is None or last.quality is not reading.quality:
            return True
        if reading.quality is not Quality.GOOD:
            return False
        if isinstance(reading.value, bool) or isinstance(last.value, bool):
            return reading.value != last.value
        if reading.value is None or last.value is None:
            return True
        deadband = self._deadbands.get(reading.point)
        if deadband is None:
            return reading.value != last.value
        return deadband.exceeded(float(last.value), float(reading.value))
