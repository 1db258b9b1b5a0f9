"""EVN time-of-use bands and prices, by calendar, day and local time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge_agent.energy.tariff import TariffConfig, band_at, next_change, price_at

HCM = "Asia/Ho_Chi_Minh"  # UTC+7, no daylight saving


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """2026-03-02 is a Monday; `day` 6 is the Sunday after; given in local time."""
    return datetime(2026, 3, 2 + day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


@pytest.mark.parametrize(
    ("day", "hour", "minute", "band"),
    [
        (0, 9, 29, "normal"),
        (0, 9, 30, "peak"),
        (0, 11, 29, "peak"),
        (0, 11, 30, "normal"),
        (0, 17, 0, "peak"),
        (0, 19, 59, "peak"),
        (0, 20, 0, "normal"),
        (0, 22, 0, "off_peak"),
        (0, 3, 59, "off_peak"),
        (0, 4, 0, "normal"),
        (5, 10, 0, "peak"),  # Saturday has peaks
        (6, 10, 0, "normal"),
        (6, 18, 0, "normal"),
        (6, 23, 0, "off_peak"),  # Sunday: none
    ],
)
def test_evn_2014_calendar(day: int, hour: int, minute: int, band: str) -> None:
    assert band_at(TariffConfig(), at(day, hour, minute), HCM) == band


@pytest.mark.parametrize(
    ("day", "hour", "band"),
    [
        (0, 10, "normal"),
        (0, 17, "normal"),
        (0, 18, "peak"),
        (0, 22, "peak"),
        (0, 23, "normal"),
        (0, 5, "off_peak"),
        (0, 6, "normal"),
        (6, 18, "normal"),
    ],
)
def test_evn_2026_calendar(day: int, hour: int, band: str) -> None:
    assert band_at(TariffConfig(calendar="evn-2026"), at(day, hour), HCM) == band


def test_prices_follow_the_voltage_level_and_can_be_overridden() -> None:
    assert price_at(TariffConfig(), at(0, 10), HCM) == ("peak", 3398.0)
    assert price_at(TariffConfig(voltage="below_6kv"), at(0, 1), HCM) == ("off_peak", 1300.0)
    own = TariffConfig(prices_vnd_per_kwh={"peak": 3000, "normal": 2000, "off_peak": 1000})
    assert price_at(own, at(0, 12), HCM) == ("normal", 2000.0)


@pytest.mark.parametrize(
    ("calendar", "now", "change", "price"),
    [
        ("evn-2014", at(0, 3, 0), at(0, 4, 0), 1833.0),  # off-peak ends
        ("evn-2014", at(0, 10, 0), at(0, 11, 30), 1833.0),  # the morning peak ends
        ("evn-2014", at(0, 11, 30), at(0, 17, 0), 3398.0),  # from the very edge: the next
        ("evn-2014", at(0, 21, 0), at(0, 22, 0), 1190.0),
        ("evn-2014", at(5, 21, 0), at(5, 22, 0), 1190.0),  # Saturday night
        ("evn-2014", at(6, 12, 0), at(6, 22, 0), 1190.0),  # Sunday has no peak
        ("evn-2026", at(6, 23, 0), at(7, 0, 0), 1190.0),  # Sunday's normal into Monday's night
    ],
)
def test_the_next_change_of_price(
    calendar: str, now: datetime, change: datetime, price: float
) -> None:
    found = next_change(TariffConfig.model_validate({"calendar": calendar}), now, HCM)
    assert found is not None
    assert found[0] == change
    assert found[1] == price


def test_prices_that_never_change_have_no_next_change() -> None:
    flat = TariffConfig.model_validate(
        {"prices_vnd_per_kwh": {"peak": 1500, "normal": 1500, "off_peak": 1500}}
    )
    assert next_change(flat, at(0, 10, 0), HCM) is None
