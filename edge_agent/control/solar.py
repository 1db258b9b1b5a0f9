"""Where the sun is over the site, and what a clear sky would give: the PV forecast's shape.

Solar elevation from NOAA's low-precision formulas (Spencer's series for the declination
and the equation of time; within about a degree, far closer than clouds let a forecast be),
and Haurwitz's clear-sky global horizontal irradiance, which needs no weather input: only
the elevation. Pure functions of an aware instant; no dependency beyond `math`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["clear_sky_w_m2", "solar_elevation_deg"]

_MIN_SINE = 0.01
"""Below about 0.6° of elevation Haurwitz's formula means nothing (and the panels see no
direct sun): count it as night."""


def solar_elevation_deg(at: datetime, *, latitude_deg: float, longitude_deg: float) -> float:
    """The sun's elevation above the horizon (degrees; negative at night) at `at`, an aware
    instant, seen from the given latitude (north positive) and longitude (east positive)."""
    if at.tzinfo is None:
        raise ValueError("solar_elevation_deg needs an aware datetime")
    utc = at.astimezone(UTC)
    hours_utc = utc.hour + utc.minute / 60 + (utc.second + utc.microsecond / 1e6) / 3600
    day_of_year = utc.timetuple().tm_yday
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
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    solar_time_min = hours_utc * 60 + equation_of_time_min + 4 * longitude_deg
    hour_angle = math.radians(solar_time_min / 4 - 180)
    latitude = math.radians(latitude_deg)
    sine = math.sin(latitude) * math.sin(declination) + math.cos(latitude) * math.cos(
        declination
    ) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sine))))


def clear_sky_w_m2(at: datetime, *, latitude_deg: float, longitude_deg: float) -> float:
    """Haurwitz clear-sky global horizontal irradiance (W/m²) at `at`: 0 at night."""
    elevation = solar_elevation_deg(at, latitude_deg=latitude_deg, longitude_deg=longitude_deg)
    sine = math.sin(math.radians(elevation))
    if sine <= _MIN_SINE:
        return 0.0
    return 1098.0 * sine * math.exp(-0.057 / sine)
