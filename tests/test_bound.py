"""The perfect-hindsight bound: known optima on hand-made days, and never above a real day.

The hand-made days put one movable machine beside a flat base load under a price step, so
the optimum can be written down. The seeded factories step the plant models through a day
in-process (no servers), once without control and once under a simple hand-written rule,
and score both against the bound on the no-control day.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from edge_agent.clock import SimClock
from edge_agent.control.config import LoadConfig
from edge_agent.energy.tariff import EmissionsConfig, TariffConfig, price_at
from simulators.bound import BoundDay, solve_bound
from simulators.carried import Leftover, carried_work
from simulators.equipment import (
    AirCompressor,
    Batch,
    BatchFurnace,
    Charger,
    Chiller,
    Machine,
    RooftopPv,
    Session,
    TankPump,
    vary,
)
from simulators.equipment.profiles import PARK_ZONE, local_hour
from simulators.scoring import FactoryRecord, Recorder, check_bound, hindsight, score

WINDOW_S = 900
HOURS = WINDOW_S / 3600
MONDAY = datetime(2026, 3, 2, tzinfo=PARK_ZONE)
PEAK, CHEAP = 3000.0, 1200.0
ZONE = "Asia/Ho_Chi_Minh"


@dataclass
class _OneBatch(BatchFurnace):
    """A furnace whose day is one hand-made batch."""

    batch: Batch | None = None

    def day_batches(self, day: date) -> list[Batch]:
        return [self.batch] if self.batch and self.batch.release.date() == day else []


@dataclass
class _OneSession(Charger):
    """A charger whose day is one hand-made session."""

    planned: Session | None = None

    def day_sessions(self, day: date) -> list[Session]:
        return [self.planned] if self.planned and self.planned.arrival.date() == day else []


@dataclass
class _SteadyChiller(Chiller):
    """A chiller whose process puts a constant heat load into the tank."""

    steady_kw: float = 150.0

    def load_kw(self, now: datetime) -> float:
        return self.steady_kw


def _day(
    prices: list[float], machines: Mapping[str, Machine], *, peak_cap_kw: float | None = None
) -> BoundDay:
    starts = [MONDAY + timedelta(seconds=WINDOW_S * k) for k in range(len(prices))]
    return BoundDay(
        window_starts=starts,
        window_s=WINDOW_S,
        price_vnd_per_kwh=prices,
        after_price_vnd_per_kwh=CHEAP,
        base_kw=[100.0] * len(prices),
        machines=machines,
        peak_cap_kw=peak_cap_kw,
    )


def test_a_batch_moves_out_of_the_peak() -> None:
    # Two peak hours, then two cheap ones; a one-hour 100 kW batch released at the start
    # with the whole day to run in.
    prices = [PEAK] * 8 + [CHEAP] * 8
    batch = Batch(MONDAY, 3600.0, 100.0, MONDAY + timedelta(hours=4))
    furnace = _OneBatch(idle_kw=3.0, batch=batch)
    result = solve_bound(_day(prices, {"furnace": furnace}))
    floor = sum(p * HOURS * (100.0 + 3.0) for p in prices)
    assert result["cost_vnd"] == pytest.approx(floor + 97.0 * CHEAP, abs=1)
    assert result["jobs"] == 1
    assert result["shortfall_kwh"] == 0
    assert all(kw == pytest.approx(103.0) for kw in result["demand_kw"][:8])
    # The lowest peak any schedule reaches is the batch's own, whenever it runs.
    assert result["min_peak_kw"] == pytest.approx(200.0, abs=0.1)


def test_a_batch_starts_between_grid_points_when_the_peak_cap_asks_for_it() -> None:
    # A 15-min 90 kW batch under a cap of 100 + 45 kW fits only split evenly across a
    # window boundary: started at 7.5 min, between two points of the 5-min grid.
    prices = [CHEAP] * 4
    batch = Batch(MONDAY, 900.0, 90.0, MONDAY + timedelta(minutes=30))
    furnace = _OneBatch(idle_kw=0.0, batch=batch)
    cap = 145.0
    result = solve_bound(_day(prices, {"furnace": furnace}, peak_cap_kw=cap))
    assert result["no_control_caps"] == "kept"
    assert max(result["demand_kw"]) <= cap + 1e-3
    assert result["demand_kw"][:2] == pytest.approx([145.0, 145.0], abs=1e-3)
    assert result["cost_vnd"] == pytest.approx(4 * CHEAP * HOURS * 100.0 + 22.5 * CHEAP, abs=1)


def test_a_chiller_precools_before_the_peak() -> None:
    # Cheap hour, peak hour, cheap hour: the tank holds the peak hour's 150 kWh of heat
    # (6 K × 35 kWh/K), so no cooling runs in the peak and all of it is bought cheap.
    prices = [CHEAP] * 4 + [PEAK] * 4 + [CHEAP] * 4
    chiller = _SteadyChiller(supply_c=9.0, rated_kw=75.0, cop=4.0, standby_kw=0.8)
    result = solve_bound(_day(prices, {"chiller": chiller}))
    heat_kwh = 150.0 * 3  # three hours
    cooling_per_kwh = 75.0 * 4.0 / (75.0 - 0.8)
    floor = sum(p * HOURS * (100.0 + 0.8) for p in prices)
    assert result["cost_vnd"] == pytest.approx(floor + heat_kwh / cooling_per_kwh * CHEAP, abs=2)
    assert all(kw == pytest.approx(100.8) for kw in result["demand_kw"][4:8])
    assert result["band_slack_kwh"] == 0


def test_a_charging_session_fills_the_cheap_windows_first() -> None:
    # 20 kWh at most 11 kW over two hours: the cheap hour takes 11 kWh, the peak hour the rest.
    prices = [PEAK] * 4 + [CHEAP] * 4
    session = Session(MONDAY, MONDAY + timedelta(hours=2), 20.0, 11.0)
    charger = _OneSession(rated_kw=11.0, planned=session)
    result = solve_bound(_day(prices, {"charger": charger}))
    floor = sum(p * HOURS * 100.0 for p in prices)
    assert result["cost_vnd"] == pytest.approx(floor + 11.0 * CHEAP + 9.0 * PEAK, abs=1)
    assert result["shortfall_kwh"] == 0


def test_a_session_past_the_end_is_carried_at_the_price_after_it() -> None:
    # Departing an hour after the end: 11 kWh fits after it at the cheap price.
    prices = [PEAK] * 4
    session = Session(MONDAY, MONDAY + timedelta(hours=2), 20.0, 11.0)
    charger = _OneSession(rated_kw=11.0, planned=session)
    result = solve_bound(_day(prices, {"charger": charger}))
    assert result["carried_kwh"] == pytest.approx(11.0)
    floor = sum(p * HOURS * 100.0 for p in prices)
    assert result["cost_vnd"] == pytest.approx(floor + 11.0 * CHEAP + 9.0 * PEAK, abs=1)


def test_carried_work_runs_a_furnace_back_to_back_after_the_end() -> None:
    end = MONDAY + timedelta(days=1)
    left = [
        Leftover("f", "batch", 50.0, 100.0, end + timedelta(minutes=30)),  # half an hour
        Leftover("f", "batch", 100.0, 100.0, end + timedelta(minutes=60)),  # ends at 1:30
        Leftover("c", "session", 20.0, 10.0, end + timedelta(hours=1)),  # 10 kWh fits
    ]
    carried = carried_work(left, end)
    assert carried.energy_kwh == pytest.approx(160.0)
    assert carried.deadlines_missed == 1
    assert carried.shortfall_kwh == pytest.approx(10.0)


Control = Callable[[Mapping[str, Machine], datetime], None]


def _no_control(machines: Mapping[str, Machine], now: datetime) -> None:
    del machines, now


def _hold_through_the_evening_peak(machines: Mapping[str, Machine], now: datetime) -> None:
    """A hand-written rule: no new batch and no charging from 17:00 to 20:00."""
    hold = 17.0 <= local_hour(now) < 20.0
    for machine in machines.values():
        if isinstance(machine, BatchFurnace | Charger):
            machine.inputs["enable"] = not hold


def _factory(seed: int) -> dict[str, Machine]:
    rng = random.Random(f"bound/{seed}")
    made: list[tuple[str, Machine]] = [
        ("furnace", BatchFurnace()),
        ("chiller", Chiller()),
        ("compressor", AirCompressor()),
        ("pump", TankPump()),
        ("charger", Charger(kind="forklift", rated_kw=8.0)),
        ("pv", RooftopPv()),
    ]
    return {name: vary(machine, rng) for name, machine in made}


def _run(
    seed: int, control: Control, *, base_kw: float = 250.0
) -> tuple[FactoryRecord, dict[str, Machine]]:
    """A day of the seeded factory stepped every 10 s, its meter the base load plus the
    machines, recorded at every window boundary."""
    machines = _factory(seed)
    register = [0.0]
    recorder = Recorder(
        SimClock(MONDAY), WINDOW_S, {"f": (lambda _t: register[0], machines)}, {"f": 480.0}
    )
    recorder.sample(MONDAY)
    step = 10.0
    for i in range(1, 8641):
        now = MONDAY + timedelta(seconds=step * i)
        control(machines, now)
        for machine in machines.values():
            machine.step(step, now)
        register[0] += (base_kw + sum(m.grid_kw() for m in machines.values())) * step / 3600
        if i % 90 == 0:
            recorder.sample(now)
    return recorder.records["f"], machines


@dataclass
class _StopTheIdleCompressor:
    """A hand-written rule that saves unloaded running: a compressor found unloaded in the
    first ten minutes of an hour is held off for `LOAD`'s maximum off time, at most its
    sheds a day (then enabled again, its motor stays stopped until cut-in)."""

    sheds: int = 0
    since: datetime | None = None

    def __call__(self, machines: Mapping[str, Machine], now: datetime) -> None:
        compressor = machines["compressor"]
        assert isinstance(compressor, AirCompressor)
        if self.since is not None:
            if (now - self.since).total_seconds() >= COMPRESSOR_LOAD.max_off_s:
                compressor.inputs["enable"], self.since = True, None
        elif (
            self.sheds < COMPRESSOR_LOAD.max_sheds_per_day
            and now.minute < 10
            and compressor.motor_on
            and not compressor.loaded
        ):
            compressor.inputs["enable"], self.since = False, now
            self.sheds += 1


COMPRESSOR_LOAD = LoadConfig(
    name="compressor",
    device="compressor",
    rated_kw=55.0,
    sheddable=True,
    min_off_s=60,
    max_off_s=180,
    max_sheds_per_day=12,
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_bound_is_never_above_a_real_day(seed: int) -> None:
    tariff, emissions = TariffConfig(), EmissionsConfig()
    runs = {
        "none": _run(seed, _no_control),
        "held": _run(seed, _hold_through_the_evening_peak),
        "stopped": _run(seed, _StopTheIdleCompressor()),
    }
    per: dict[str, dict[str, Any]] = {
        mode: score(record, window_s=WINDOW_S, tariff=tariff, zone=ZONE, emissions=emissions)
        for mode, (record, _) in runs.items()
    }
    record, machines = runs["none"]
    bound = hindsight(
        record, machines, window_s=WINDOW_S, tariff=tariff, zone=ZONE, loads=[COMPRESSOR_LOAD]
    )
    per["hindsight"] = bound
    assert bound["shortfall_kwh"] == 0
    assert bound["late_batches"] == 0
    assert bound["band_slack_kwh"] == 0
    assert bound["jobs"] >= 3
    assert bound["cost_lower_vnd"] <= bound["cost_vnd"] <= per["none"]["cost_vnd"]
    assert bound["peak_window_demand_kw"] <= per["none"]["peak_window_demand_kw"] + 0.1
    assert bound["min_peak_kw"] <= bound["peak_window_demand_kw"]
    # No run is cheaper than the bound unless it broke a constraint the bound assumes.
    assert all("it broke none" not in problem for problem in check_bound(per))


def test_a_compressors_unloaded_running_is_in_the_bound_but_what_sheds_may_stop() -> None:
    # The compressor alone movable: with no shed allowed the bound keeps nearly all of its
    # day's energy (it may only move the loaded part within the band); with the rule's
    # sheds it may save a little more; stopped at will (no loads given, the loosest) it
    # keeps only the loaded part. None is above the day without control.
    tariff = TariffConfig()
    record, machines = _run(1, _no_control)
    compressor = {"compressor": machines["compressor"]}
    natural_kwh = sum(record.machine_kwh["compressor"])

    def bound_kwh(loads: list[LoadConfig] | None) -> float:
        result = hindsight(
            record, compressor, window_s=WINDOW_S, tariff=tariff, zone=ZONE, loads=loads
        )
        kwh: float = result["machine_kwh"]["compressor"]
        return kwh

    unshed, shed, free = bound_kwh([]), bound_kwh([COMPRESSOR_LOAD]), bound_kwh(None)
    assert 0.97 * natural_kwh <= unshed <= natural_kwh + 0.5
    assert free < shed < unshed
    assert free < 0.9 * natural_kwh


def test_a_run_cheaper_than_the_bound_is_named_with_what_it_broke() -> None:
    none = {"cost_vnd": 10_000_000, "peak_window_demand_kw": 300.0, "over_limit_kw_min": 10.0}
    per: dict[str, dict[str, Any]] = {
        "none": none,
        "agent": {**none, "cost_vnd": 9_000_000, "peak_window_demand_kw": 320.0},
        "limiter": {**none, "cost_vnd": 9_500_000},
        "tolerated": {**none, "cost_vnd": 9_899_000},
        "hindsight": {"cost_vnd": 9_900_000, "cost_lower_vnd": 9_900_000},
    }
    problems = check_bound(per)
    assert len(problems) == 2
    assert problems[0].startswith("agent: a run cheaper than the perfect-hindsight bound")
    assert "peak window demand above no control's" in problems[0]
    assert "it broke none" in problems[1]


def test_the_score_carries_the_work_left_at_the_end() -> None:
    end = MONDAY + timedelta(hours=1)
    record = FactoryRecord("f", None)
    record.window_starts = [MONDAY + timedelta(seconds=WINDOW_S * k) for k in range(4)]
    record.import_kwh = [25.0] * 4
    record.left = [Leftover("f", "batch", 10.0, 100.0, end + timedelta(hours=1))]
    record.store_deficit_kwh = {"chiller": 2.0}
    figures = score(
        record, window_s=WINDOW_S, tariff=TariffConfig(), zone=ZONE, emissions=EmissionsConfig()
    )
    after = price_at(TariffConfig(), end, ZONE)[1]
    assert figures["carried_kwh"] == pytest.approx(12.0)
    assert figures["energy_kwh"] == pytest.approx(112.0)
    assert figures["carried_vnd"] == round(12.0 * after)
    assert figures["deadlines_missed"] == 0
