"""The planner's forecasts, fed synthetic histories on a simulated clock: tables and properties."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.control.forecast import BaseLoadForecast, ForecastError, PvForecast
from edge_agent.control.solar import clear_sky_w_m2, solar_elevation_deg
from simulators.equipment import pv as bench_pv

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SLOT = timedelta(seconds=900)
MONDAY = datetime(2026, 3, 2, tzinfo=ZONE)  # a Monday, local midnight
BINH_DUONG = {"latitude_deg": 11.0, "longitude_deg": 106.65}


def feed(
    forecast: BaseLoadForecast | PvForecast,
    start: datetime,
    hours: float,
    kw: Callable[[datetime], float],
    *,
    step_s: int = 60,
) -> datetime:
    """Observe `kw(t)` every `step_s` from `start`; returns the instant after the last sample."""
    t = start
    for _ in range(round(hours * 3600 / step_s)):
        forecast.observe(t, kw(t))
        t += timedelta(seconds=step_s)
    return t


# Persistence before history -----------------------------------------------------------------


def test_nothing_observed_forecasts_nothing() -> None:
    assert BaseLoadForecast(zone=ZONE).forecast(MONDAY, 4) == (0.0,) * 4


@pytest.mark.parametrize(
    ("samples", "start", "expected_kw"),
    [
        # only the slot in progress: its samples so far
        ([(0, 100.0), (60, 140.0)], 0, 120.0),
        # a completed slot, forecast from the next: its average, flat
        ([(0, 90.0), (450, 110.0), (900, 500.0)], 900, 100.0),
        # the next slot begins before any of its samples: the last one is completed all the same
        ([(0, 90.0), (450, 110.0)], 900, 100.0),
    ],
)
def test_before_any_history_it_is_persistence(
    samples: list[tuple[int, float]], start: int, expected_kw: float
) -> None:
    base = BaseLoadForecast(zone=ZONE)
    for offset_s, kw in samples:
        base.observe(MONDAY + timedelta(seconds=offset_s), kw)
    values = base.forecast(MONDAY + timedelta(seconds=start), 96)
    assert values == pytest.approx((expected_kw,) * 96)


@settings(max_examples=30, deadline=None)
@given(level_kw=st.floats(0, 5000), hours=st.floats(0.1, 60), slots=st.integers(0, 200))
def test_a_constant_load_is_forecast_constant(level_kw: float, hours: float, slots: int) -> None:
    base = BaseLoadForecast(zone=ZONE)
    end = feed(base, MONDAY, hours, lambda _: level_kw, step_s=300)
    values = base.forecast(end, slots)
    assert len(values) == slots
    assert values == pytest.approx((level_kw,) * slots, rel=1e-9, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    samples=st.lists(
        st.tuples(st.integers(0, 10 * 86_400), st.floats(-1e4, 1e5) | st.just(math.nan)),
        max_size=300,
    ),
    start_s=st.integers(0, 12 * 86_400),
)
def test_any_history_gives_finite_non_negative_slots(
    samples: list[tuple[int, float]], start_s: int
) -> None:
    base = BaseLoadForecast(zone=ZONE)
    for offset_s, kw in sorted(samples):
        base.observe(MONDAY + timedelta(seconds=offset_s), kw)
    values = base.forecast(MONDAY + timedelta(seconds=start_s), 96)
    assert len(values) == 96
    assert all(math.isfinite(v) and v >= 0 for v in values)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        BaseLoadForecast(zone=ZONE).observe(datetime(2026, 3, 2), 1.0)


# A weekly profile -----------------------------------------------------------------------------


def weekly_kw(t: datetime) -> float:
    """A factory without noise: two shifts Monday to Saturday with a lunch dip, Sunday idle."""
    local = t.astimezone(ZONE)
    hour = local.hour + local.minute / 60
    if local.weekday() == 6:
        return 80.0
    if 6 <= hour < 22:
        return 420.0 if 11.5 <= hour < 12.5 else 600.0
    return 200.0


def noisy(seed: int) -> Callable[[datetime], float]:
    """The weekly profile, with each slot's level off by a seeded +-10 %."""
    offsets: dict[int, float] = {}

    def kw(t: datetime) -> float:
        slot = math.floor(t.timestamp() / 900)
        if slot not in offsets:
            offsets[slot] = random.Random(f"{seed}/{slot}").uniform(-0.1, 0.1)
        return weekly_kw(t) * (1 + offsets[slot])

    return kw


def test_a_weekly_profile_is_learned_within_days() -> None:
    """Plans made every slot over three weeks: the day-ahead error of the first day (nothing
    but persistence) falls by more than half by the third week, and the next slot's error
    ends below persistence's."""
    base = BaseLoadForecast(zone=ZONE)
    truth = noisy(seed=4)
    by_day: list[ForecastError] = [ForecastError() for _ in range(21)]
    persistence = ForecastError()
    slot_start, last_mean = MONDAY, None
    for _ in range(21 * 96):
        day = (slot_start - MONDAY).days
        by_day[day].remember(slot_start, base.forecast(slot_start, 96 if day % 7 == 0 else 1))
        if last_mean is not None and day >= 14:
            persistence.remember(slot_start, (last_mean,))
        end = feed(base, slot_start, 0.25, truth, step_s=180)
        last_mean = sum(truth(slot_start + timedelta(seconds=s)) for s in range(0, 900, 180)) / 5
        for tracker in (*by_day, persistence):
            tracker.realise(slot_start, last_mean)
        slot_start = end

    def horizon(day: int) -> float:
        value = by_day[day].summary()["horizon_mae_kw"]
        assert value is not None
        return value

    assert horizon(7) < 0.5 * horizon(0)
    assert horizon(14) < 0.5 * horizon(0)
    third_week = [by_day[d].summary()["mae_kw"] for d in range(14, 21)]
    next_slot = sum(v for v in third_week if v is not None) / 7
    persistence_mae = persistence.summary()["mae_kw"]
    assert persistence_mae is not None
    assert next_slot < persistence_mae


def test_sunday_is_kept_apart_and_borrows_the_weekday_shape_until_seen() -> None:
    base = BaseLoadForecast(zone=ZONE)
    sunday = MONDAY + timedelta(days=6)
    feed(base, MONDAY, 6 * 24, weekly_kw, step_s=300)
    # Saturday night, before any Sunday: Sunday's 10:00 leans towards the weekday shift,
    # above the night's flat 200 kW, while its 03:00 stays at the night's level.
    before = base.forecast(sunday, 96)
    assert before[40] > 300.0
    assert before[12] == pytest.approx(200.0, rel=0.05)
    feed(base, sunday, 14 * 24, weekly_kw, step_s=300)
    # Two weeks on, the third Sunday and the Monday after it each follow their own day.
    third_sunday = sunday + timedelta(days=14)
    sunday_values = base.forecast(third_sunday + timedelta(hours=1), 92)
    assert sunday_values == pytest.approx((80.0,) * 92, rel=0.05)
    monday = base.forecast(third_sunday + timedelta(days=1), 96)
    assert monday[40] == pytest.approx(600.0, rel=0.05)  # 10:00
    assert monday[48] == pytest.approx(420.0, rel=0.05)  # 12:00, the lunch dip
    assert monday[92] == pytest.approx(200.0, rel=0.05)  # 23:00


# PV -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "earliest", "latest"),
    [
        # solar noon in Binh Duong moves with the equation of time: ~12:00 in Jan and March,
        # ~11:55 in June, ~11:37 in early November (UTC+7, the zone's meridian is 105 E)
        (datetime(2026, 1, 15, tzinfo=ZONE), (11, 45), (12, 15)),
        (datetime(2026, 3, 21, tzinfo=ZONE), (11, 45), (12, 15)),
        (datetime(2026, 6, 21, tzinfo=ZONE), (11, 40), (12, 10)),
        (datetime(2026, 11, 3, tzinfo=ZONE), (11, 25), (11, 50)),
    ],
)
def test_clear_sky_peaks_at_solar_noon_and_matches_the_bench_sun(
    day: datetime, earliest: tuple[int, int], latest: tuple[int, int]
) -> None:
    minutes = [day + timedelta(minutes=m) for m in range(1440)]
    peak = max(minutes, key=lambda t: clear_sky_w_m2(t, **BINH_DUONG))
    assert earliest <= (peak.hour, peak.minute) <= latest
    assert 800 < clear_sky_w_m2(peak, **BINH_DUONG) < 1050
    for t in minutes[::17]:
        assert solar_elevation_deg(t, **BINH_DUONG) == pytest.approx(
            bench_pv.solar_elevation_deg(t), abs=0.5
        )


def test_pv_is_zero_at_night_and_peaks_near_noon_scaled_by_the_ratio() -> None:
    pv = PvForecast(zone=ZONE, latitude_deg=11.0, longitude_deg=106.65)
    kw_per_w_m2 = 0.16  # 200 kWp at a performance ratio of 0.8
    end = feed(pv, MONDAY + timedelta(hours=6), 3, lambda t: kw_per_w_m2 * pv.clear_sky_w_m2(t))
    values = pv.forecast(end, 96)  # from 09:00 to 09:00 the next day
    hours = [(end + i * SLOT).astimezone(ZONE).hour for i in range(96)]
    assert all(v == 0.0 for v, h in zip(values, hours, strict=True) if h >= 19 or h < 5)
    assert all(v > 0.0 for v, h in zip(values, hours, strict=True) if 7 <= h < 17)
    peak = max(range(96), key=lambda i: values[i])
    assert (end + peak * SLOT).astimezone(ZONE).hour in (11, 12)
    clear = pv.clear_sky_w_m2(end + peak * SLOT + SLOT / 2)
    assert values[peak] == pytest.approx(kw_per_w_m2 * clear, rel=0.02)


def test_a_cloudy_hour_scales_the_next_slots_and_fades_towards_the_typical_day() -> None:
    pv = PvForecast(zone=ZONE, latitude_deg=11.0, longitude_deg=106.65)
    clear_kw = 0.16
    feed(pv, MONDAY, 24, lambda t: clear_kw * pv.clear_sky_w_m2(t), step_s=120)
    tuesday = MONDAY + timedelta(days=1)
    feed(pv, tuesday, 9, lambda t: clear_kw * pv.clear_sky_w_m2(t), step_s=120)
    end = feed(pv, tuesday + timedelta(hours=9), 1, lambda t: 0.5 * clear_kw * pv.clear_sky_w_m2(t))
    values = pv.forecast(end, 24)  # 10:00 to 16:00
    ratios = [v / pv.clear_sky_w_m2(end + i * SLOT + SLOT / 2) for i, v in enumerate(values)]
    # the cloudy hour's ratio, hedged a little towards the typical day's
    assert 0.5 * clear_kw < ratios[0] < 0.6 * clear_kw
    assert ratios[-1] == pytest.approx(clear_kw, rel=0.05)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(ratios))


def test_without_coordinates_there_is_no_pv_forecast() -> None:
    pv = PvForecast(zone=ZONE, latitude_deg=None, longitude_deg=None)
    feed(pv, MONDAY + timedelta(hours=10), 1, lambda _: 50.0)
    assert not pv.located
    assert pv.forecast(MONDAY + timedelta(hours=11), 8) == (0.0,) * 8


def test_on_the_bench_pv_the_forecast_beats_persistence() -> None:
    """Four days of the bench's cloudy rooftop: the next slot's error is below flat
    persistence's, and the day-ahead error far below it."""
    sun = bench_pv.RooftopPv(peak_kw=200.0, seed=2)
    pv = PvForecast(zone=ZONE, latitude_deg=11.0, longitude_deg=106.65)
    persistence = ForecastError()
    t, last_mean = MONDAY, None
    samples: list[float] = []
    for i in range(4 * 1440):
        if i % 15 == 0:
            if samples:
                last_mean = sum(samples) / len(samples)
                if pv.clear_sky_w_m2(t - SLOT / 2) > 0:
                    persistence.realise(t - SLOT, last_mean)
            samples = []
            if i >= 1440 and last_mean is not None:
                pv.error.remember(t, pv.forecast(t, 96))
                persistence.remember(t, (last_mean,) * 96)
        sun.step(60, t)
        pv.observe(t, sun.power_kw())
        samples.append(sun.power_kw())
        t += timedelta(seconds=60)
    ours, flat = pv.error.summary(), persistence.summary()
    assert ours["slots"] > 100
    assert ours["mae_kw"] is not None
    assert flat["mae_kw"] is not None
    assert ours["mae_kw"] < flat["mae_kw"]
    assert ours["horizon_mae_kw"] is not None
    assert flat["horizon_mae_kw"] is not None
    assert ours["horizon_mae_kw"] < 0.5 * flat["horizon_mae_kw"]


# The error ----------------------------------------------------------------------------------


def test_the_error_of_a_known_series() -> None:
    error = ForecastError(slot_s=900)
    t0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    error.remember(t0, [10.0, 20.0, 30.0])
    error.remember(t0 + timedelta(seconds=60), [99.0, 99.0])  # re-plan in the slot: ignored
    error.realise(t0, 11.0)
    error.remember(t0 + SLOT, [12.0, 22.0])
    error.realise(t0 + SLOT, 25.0)
    error.realise(t0 + 2 * SLOT, 20.0)
    assert error.summary() == pytest.approx(
        {
            "mae_kw": (1 + 13) / 2,  # each slot from the plan made at its start, if any
            "slots": 2,
            "mean_kw": (11 + 25) / 2,
            "horizon_mae_kw": (1 + 5 + 13 + 10 + 2) / 5,  # every lead of every plan
            "horizon_pairs": 5,
        }
    )


def test_the_error_before_any_slot_is_scored_and_its_memory_is_bounded() -> None:
    error = ForecastError()
    assert error.summary() == {
        "mae_kw": None,
        "slots": 0,
        "mean_kw": None,
        "horizon_mae_kw": None,
        "horizon_pairs": 0,
    }
    t = MONDAY
    for _ in range(30 * 96):  # a month of plans with nothing ever measured
        error.remember(t, [1.0] * 96)
        t += SLOT
    assert len(error._pending) <= 96 + 3
    assert error.summary()["slots"] == 0


def test_the_base_forecast_scores_itself_from_its_observations() -> None:
    base = BaseLoadForecast(zone=ZONE)
    feed(base, MONDAY, 0.25, lambda _: 100.0)
    base.error.remember(MONDAY + SLOT, base.forecast(MONDAY + SLOT, 2))
    feed(base, MONDAY + SLOT, 0.5, lambda t: 100.0 if t < MONDAY + 2 * SLOT else 130.0)
    summary = base.error.summary()
    assert summary["slots"] == 1
    assert summary["mae_kw"] == pytest.approx(0.0)
    assert summary["horizon_pairs"] == 1  # the 130 kW slot is not over yet
