"""EVN's time-of-use production tariff, as versioned data a site chooses and may override.

Prices in VND/kWh, VAT excluded (Decision 1279/QD-BCT, effective 2025-05-10). Two calendars:
`evn-2014` (Circular 16/2014/TT-BCT hours, the ones on bills today) and `evn-2026` (Decision
963/QD-BCT system calendar: peak 17:30-22:30 Monday to Saturday, off-peak 00:00-06:00);
which one bills follow depends on an amending circular, so the site says.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, PositiveFloat

from edge_agent.config.base import StrictModel

__all__ = [
    "Band",
    "EmissionsConfig",
    "TariffConfig",
    "band_at",
    "cheapest",
    "next_change",
    "price_at",
]

Band = Literal["peak", "normal", "off_peak"]
Voltage = Literal["110kv_and_above", "22_to_110kv", "6_to_22kv", "below_6kv"]

PRICES_VND_PER_KWH: dict[Voltage, dict[Band, float]] = {
    "110kv_and_above": {"normal": 1811, "off_peak": 1146, "peak": 3266},
    "22_to_110kv": {"normal": 1833, "off_peak": 1190, "peak": 3398},
    "6_to_22kv": {"normal": 1899, "off_peak": 1234, "peak": 3508},
    "below_6kv": {"normal": 1987, "off_peak": 1300, "peak": 3640},
}

# (start, end, band) in local time; what no entry covers is "normal".
_WEEKDAY: dict[str, list[tuple[time, time, Band]]] = {
    "evn-2014": [
        (time(9, 30), time(11, 30), "peak"),
        (time(17, 0), time(20, 0), "peak"),
        (time(22, 0), time.max, "off_peak"),
        (time(0, 0), time(4, 0), "off_peak"),
    ],
    "evn-2026": [(time(17, 30), time(22, 30), "peak"), (time(0, 0), time(6, 0), "off_peak")],
}
_SUNDAY: dict[str, list[tuple[time, time, Band]]] = {
    "evn-2014": [(time(22, 0), time.max, "off_peak"), (time(0, 0), time(4, 0), "off_peak")],
    "evn-2026": [(time(0, 0), time(6, 0), "off_peak")],
}


class TariffConfig(StrictModel):
    calendar: Literal["evn-2014", "evn-2026"] = "evn-2014"
    voltage: Voltage = "22_to_110kv"
    """The site's supply voltage level, which sets the prices."""
    prices_vnd_per_kwh: dict[Band, PositiveFloat] | None = None
    """Override EVN's prices (all three bands), e.g. for a park's own retail tariff."""


class EmissionsConfig(StrictModel):
    grid_kg_co2_per_kwh: float = Field(default=0.6592, gt=0, le=2)
    """Vietnam's grid emission factor 2023 (0.6592 tCO2/MWh, MONRE); set the newest one."""


def band_at(tariff: TariffConfig, moment: datetime, zone: str) -> Band:
    local = moment.astimezone(ZoneInfo(zone))
    table = _SUNDAY if local.weekday() == 6 else _WEEKDAY
    clock = local.time()
    for start, end, band in table[tariff.calendar]:
        if start <= clock < end or (end == time.max and clock >= start):
            return band
    return "normal"


def price_at(tariff: TariffConfig, moment: datetime, zone: str) -> tuple[Band, float]:
    band = band_at(tariff, moment, zone)
    prices = tariff.prices_vnd_per_kwh or PRICES_VND_PER_KWH[tariff.voltage]
    return band, float(prices[band])


def cheapest(tariff: TariffConfig) -> float | None:
    """The tariff's lowest price, VND/kWh; None where every band has the same price."""
    prices = set((tariff.prices_vnd_per_kwh or PRICES_VND_PER_KWH[tariff.voltage]).values())
    return float(min(prices)) if len(prices) > 1 else None


def next_change(tariff: TariffConfig, moment: datetime, zone: str) -> tuple[datetime, float] | None:
    """The first moment after `moment` at which the price changes, and the price from then;
    None if it does not within a week (a site whose prices are all one). A calendar's prices
    change only on its tables' edges or at midnight, where another day's table begins, so
    those are the only moments looked at."""
    here = ZoneInfo(zone)
    local = moment.astimezone(here)
    _, now = price_at(tariff, moment, zone)
    for days in range(8):
        day = local.date() + timedelta(days=days)
        table = (_SUNDAY if day.weekday() == 6 else _WEEKDAY)[tariff.calendar]
        edges = {time(0, 0)} | {edge for entry in table for edge in entry[:2] if edge != time.max}
        for edge in sorted(edges):
            candidate = datetime.combine(day, edge, here)
            if candidate <= local:
                continue
            _, price = price_at(tariff, candidate, zone)
            if price != now:
                return candidate, price
    return None
