"""Shapes of a day in the park: local time, shifts, and smooth seeded noise.

Noise is a pure function of (seed, time, channel), like the meter's, so a machine stepped
every second or every ten seconds sees the same demand at the same instant.
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = ["PARK_ZONE", "local_hour", "noise", "shift_factor", "smooth_noise"]

PARK_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
"""Binh Duong: UTC+7, no daylight saving."""


def local_hour(now: datetime, zone: ZoneInfo = PARK_ZONE) -> float:
    local = now.astimezone(zone)
    return local.hour + local.minute / 60 + local.second / 3600


def shift_factor(hour: float, night_share: float) -> float:
    """1 on the two day shifts (06:00-22:00) with half-hour ramps, `night_share` at night,
    and a dip in the lunch break and at the 14:00 shift change."""
    ramp = min(1.0, abs(hour - 6) / 0.5, abs(hour - 22) / 0.5)
    if not 6 <= hour < 22:
        return night_share
    level = night_share + (1.0 - night_share) * ramp
    if 11.5 <= hour < 12.25 or 13.9 <= hour < 14.15:
        level *= 0.75
    return level


def noise(seed: int, index: int, channel: int) -> float:
    """Deterministic noise in [-1, 1) for one grid index and channel (no RNG state)."""
    x = (index * 2654435761 + seed * 40503 + channel * 97531) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x45D9F3B) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x45D9F3B) & 0xFFFFFFFF
    x ^= x >> 16
    return x / 2**31 - 1.0


def smooth_noise(seed: int, t: float, period_s: float, channel: int) -> float:
    """Noise in [-1, 1) that wanders over `period_s`: cosine-blended knots on that grid."""
    position = t / period_s
    index = math.floor(position)
    blend = (1 - math.cos(math.pi * (position - index))) / 2
    a = noise(seed, index, channel)
    b = noise(seed, index + 1, channel)
    return a + (b - a) * blend
