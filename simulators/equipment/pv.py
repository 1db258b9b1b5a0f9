"""Rooftop PV in Binh Duong: clear-sky sun times a seeded, drifting cloud factor."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime

from .base import Machine, Value
from .profiles import PARK_ZONE, smooth_noise

__all__ = ["RooftopPv", "solar_elevation_deg"]

LATITUDE_DEG = 11.0
LONGITUDE_DEG = 106.65


def solar_elevation_deg(now: datetime) -> float:
    """The sun's elevation over the park (NOAA's low-precision formulas, within a degree)."""
    utc = now.timestamp()
    day_of_year = now.astimezone(PARK_ZONE).timetuple().tm_yday
    hours_utc = (utc % 86_400) / 3600.0
    gamma = 2 * math.pi / 365 * (day_of_year - 1 + (hours_utc - 12) / 24)
    equation_of_time_min = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    declination = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
    )
    solar_time_min = hours_utc * 60 + equation_of_time_min + 4 * LONGITUDE_DEG
    hour_angle = math.radians(solar_time_min / 4 - 180)
    latitude = math.radians(LATITUDE_DEG)
    sine = math.sin(latitude) * math.sin(declination) + math.cos(latitude) * math.cos(
        declination
    ) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sine))))


@dataclass
class RooftopPv(Machine):
    """Generates `peak_kw * irradiance / 1000 W/m² * performance_ratio` under passing clouds.
    Not controllable; `grid_kw` is negative because the site meter sees net import."""

    peak_kw: float = 200.0
    performance_ratio: float = 0.8
    seed: int = 1
    _kw: float = 0.0
    _irradiance_w_m2: float = 0.0
    _cloudiness: dict[date, float] = field(default_factory=dict, repr=False)

    def irradiance_w_m2(self, now: datetime) -> float:
        """Haurwitz clear-sky global horizontal irradiance, times the cloud factor."""
        sine = math.sin(math.radians(solar_elevation_deg(now)))
        if sine <= 0.01:
            return 0.0
        clear = 1098.0 * sine * math.exp(-0.057 / sine)
        return clear * self.cloud_factor(now)

    def cloud_factor(self, now: datetime) -> float:
        day = now.astimezone(PARK_ZONE).date()
        if day not in self._cloudiness:  # how cloudy the day is, from the seed and the date
            self._cloudiness[day] = random.Random(f"{self.seed}/{day.isoformat()}").uniform(
                0.1, 0.6
            )
        t = now.timestamp()
        drift = (smooth_noise(self.seed, t, 240.0, 4) + 1) / 2  # clouds over minutes
        gust = (smooth_noise(self.seed, t, 45.0, 5) + 1) / 2  # their edges
        return max(0.05, 1.0 - self._cloudiness[day] * (0.7 * drift + 0.3 * gust) * 1.6)

    def power_kw(self) -> float:
        return self._kw

    def grid_kw(self) -> float:
        return -self._kw

    def _advance(self, dt_s: float, now: datetime) -> None:
        self._irradiance_w_m2 = self.irradiance_w_m2(now)
        self._kw = self.peak_kw * self._irradiance_w_m2 / 1000.0 * self.performance_ratio

    def values(self) -> dict[str, Value]:
        return {
            "power_kw": self._kw,
            "energy_kwh": self.energy_kwh,
            "irradiance_w_m2": self._irradiance_w_m2,
        }
