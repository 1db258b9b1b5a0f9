"""The values that flow through one control cycle: readings and their quality."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeAlias

__all__ = ["PointId", "Quality", "Reading", "Value", "count"]

Value: TypeAlias = float | int | bool

PointId = str
"""`device/point`, e.g. `main-meter/total_power_kw`; unique within a site."""


class Quality(StrEnum):
    GOOD = "good"
    BAD = "bad"
    """The device did not answer, answered an error, or the value could not be decoded."""
    STALE = "stale"
    """The last good value is older than the point allows; it must not be used as fresh."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of one point. `value` is None unless the quality is GOOD."""

    point: PointId
    value: Value | None
    quality: Quality
    at: datetime
    """When the device was read, from the agent's clock (UTC)."""
    error: str | None = None
    """Why the quality is not GOOD, for logs and the data-quality report."""
    source_at: datetime | None = None
    """The device's own timestamp of the value, where the protocol carries one (OPC UA)."""

    @classmethod
    def good(cls, point: PointId, value: Value, at: datetime) -> Reading:
        return cls(point, value, Quality.GOOD, at)

    @classmethod
    def bad(cls, point: PointId, at: datetime, error: str) -> Reading:
        return cls(point, None, Quality.BAD, at, error)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 point`, `2 points`: for messages people read."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"
