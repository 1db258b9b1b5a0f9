"""Plant equipment on the bench: physics stepped in-process over simulated days, and the
heartbeat watchdog through a real OPC UA server on the simulated clock."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drivers.opcua.driver import OpcUaDriver
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_opcua_model
from edge_agent.model import Reading
from simulators.equipment.profiles import PARK_ZONE
from simulators.equipment.pv import solar_elevation_deg
from simulators.machines import (
    PHYSICS,
    AirCompressor,
    BatchFurnace,
    Charger,
    Chiller,
    Controllable,
    Machine,
    RooftopPv,
    TankPump,
    vary,
)
from simulators.opcua_server import OpcUaSimulator, SimulatedMachine, served_map
from simulators.ports import free_port

MONDAY = datetime(2026, 3, 2, tzinfo=PARK_ZONE)
"""Local midnight at the start of a working day in the park."""


def run(
    machine: Machine,
    start: datetime,
    hours: float,
    *,
    dt_s: float = 10.0,
    each: Callable[[datetime], object] | None = None,
) -> datetime:
    """Step `machine` for `hours` from `start`; `each(now)` before every step; the end."""
    now = start
    for _ in range(round(hours * 3600 / dt_s)):
        now += timedelta(seconds=dt_s)
        if each is not None:
            each(now)
        machine.step(dt_s, now)
    return now


def test_every_model_serves_its_catalogue_map() -> None:
    for model, make in PHYSICS.items():
        machine = make()
        run(machine, MONDAY, 0.1)
        points = {n for n, p in load_opcua_model(model).points.items() if p.method is None}
        assert points == set(machine.values()), model
        if isinstance(machine, Controllable):
            assert {"enable", "heartbeat", "failsafe", "power_kw", "energy_kwh"} <= points
            heartbeat = load_opcua_model(model).points["heartbeat"]
            assert (heartbeat.writable, heartbeat.min, heartbeat.max) == (True, 0, 2147483647)


def test_compressor_power_follows_its_state_and_an_inhibit_costs_pressure() -> None:
    compressor = AirCompressor(seed=3)
    seen: set[tuple[bool, bool, float]] = set()
    run(
        compressor,
        MONDAY,
        24,
        each=lambda now: seen.add(
            (compressor.loaded, compressor.motor_on, round(compressor.power_kw(), 2))
        ),
    )
    assert (True, True, 55.0) in seen
    assert (False, True, 13.75) in seen  # unloaded: a quarter of rated
    assert compressor.violations() == {"pressure_below_min_bar_s": 0.0}
    assert 0.3 * 55 * 24 < compressor.energy_kwh < 0.9 * 55 * 24

    compressor.inputs["enable"] = False
    run(compressor, MONDAY + timedelta(days=1, hours=9), 0.25)
    assert compressor.power_kw() == 0.0
    assert compressor.pressure_bar < compressor.min_bar
    assert compressor.violations()["pressure_below_min_bar_s"] > 0
    compressor.inputs["enable"] = True
    run(compressor, MONDAY + timedelta(days=1, hours=9.25), 1)
    assert compressor.pressure_bar > compressor.min_bar  # local control recovers


def test_tank_level_stays_in_band_and_an_inhibit_drains_it_below_the_minimum() -> None:
    pump = TankPump(seed=5)
    levels: list[float] = []
    run(pump, MONDAY, 24, each=lambda now: levels.append(pump.level_pct))
    assert min(levels) > pump.min_pct
    assert max(levels) <= pump.stop_pct + 1
    assert pump.violations() == {"level_below_min_pct_s": 0.0}
    assert pump.energy_kwh > 0

    pump.inputs["enable"] = False
    run(pump, MONDAY + timedelta(days=1, hours=8), 3)
    assert not pump.running
    assert pump.power_kw() == 0.0
    assert pump.level_pct < pump.min_pct
    assert pump.violations()["level_below_min_pct_s"] > 0


def test_chiller_thermostat_keeps_its_band_and_a_long_inhibit_breaches_the_maximum() -> None:
    chiller = Chiller(seed=2)
    temps: list[float] = []
    running: list[bool] = []

    def sample(now: datetime) -> None:
        temps.append(chiller.supply_c)
        running.append(chiller.running)

    run(chiller, MONDAY, 24, each=sample)
    low = float(chiller.inputs["setpoint_c"])
    assert low - 0.5 < min(temps[60:])
    assert max(temps) < low + chiller.band_k + 0.5
    assert True in running
    assert False in running
    assert chiller.violations() == {"temp_above_max_k_s": 0.0}

    chiller.inputs["enable"] = False
    run(chiller, MONDAY + timedelta(days=1, hours=8), 0.5)
    assert chiller.supply_c < chiller.max_c  # the tank rides through a short inhibit
    run(chiller, MONDAY + timedelta(days=1, hours=8.5), 3)
    assert chiller.power_kw() == chiller.standby_kw
    assert chiller.violations()["temp_above_max_k_s"] > 0


def test_a_started_batch_runs_to_its_end_whatever_the_agent_writes() -> None:
    furnace = BatchFurnace(seed=4)
    now = MONDAY
    while furnace.active is None:
        now = run(furnace, now, 1 / 360)
    batch = furnace.active
    assert batch is not None
    assert furnace.values()["batch_kw"] == batch.kw
    furnace.inputs["enable"] = False
    now = run(furnace, now, 0.5)
    assert furnace.active is batch
    assert furnace.power_kw() == batch.kw
    while furnace.active is not None:
        now = run(furnace, now, 1 / 360)
    assert furnace.batches_done == 1
    now = run(furnace, now, 10)  # inhibited: released batches wait
    values = furnace.values()
    assert values["batch_active"] is False
    assert furnace.power_kw() == furnace.idle_kw
    assert values["batches_waiting"] >= 1
    assert values["next_batch_duration_s"] > 0
    assert values["next_deadline_in_s"] < 0  # the first of them is already late
    # The queue's table shows every waiting batch, earliest deadline first.
    waiting = furnace.waiting()
    assert values["queue_1_duration_s"] == waiting[0].duration_s
    assert values["queue_1_kw"] == waiting[0].kw
    if len(waiting) > 1:
        assert values["queue_2_deadline_in_s"] >= values["queue_1_deadline_in_s"]
    assert values[f"queue_{len(waiting) + 1}_duration_s"] == 0.0

    furnace.inputs["enable"] = True  # late: the waiting batches now run one after another
    run(furnace, now, 24 - (now - MONDAY).total_seconds() / 3600 + 12)
    assert furnace.violations()["deadline_missed"] >= 1
    assert furnace.violations()["deadline_late_s"] > 0


def test_an_enabled_furnace_meets_its_deadlines() -> None:
    furnace = BatchFurnace(seed=4)
    run(furnace, MONDAY, 30)
    assert furnace.batches_done == len(furnace.day_batches(MONDAY.date()))
    assert furnace.violations()["deadline_missed"] == 0


def test_a_paused_charger_leaves_a_shortfall() -> None:
    charging = Charger(kind="car", rated_kw=11.0, seed=8)
    run(charging, MONDAY, 24)
    [session] = charging.day_sessions(MONDAY.date())
    assert charging.energy_kwh == pytest.approx(session.energy_kwh)
    assert charging.violations() == {"shortfall_kwh": 0.0}

    paused = Charger(kind="car", rated_kw=11.0, seed=8)
    paused.inputs["enable"] = False
    run(paused, MONDAY, 24)
    assert paused.energy_kwh == 0.0
    assert paused.violations()["shortfall_kwh"] == pytest.approx(session.energy_kwh)

    limited = Charger(kind="car", rated_kw=11.0, seed=8)
    limited.inputs["power_limit_kw"] = 1.0
    powers: list[float] = []
    run(limited, MONDAY, 24, each=lambda now: powers.append(limited.power_kw()))
    assert max(powers) == pytest.approx(1.0)
    hours = (session.departure - session.arrival).total_seconds() / 3600
    assert limited.violations()["shortfall_kwh"] == pytest.approx(
        max(0.0, session.energy_kwh - hours), abs=0.05
    )


def test_forklifts_plug_in_at_shift_ends() -> None:
    charger = Charger(kind="forklift", rated_kw=8.0, seed=1)
    sessions = [s for d in range(7) for s in charger.day_sessions((MONDAY + timedelta(d)).date())]
    assert sessions
    for session in sessions:
        local = session.arrival.astimezone(PARK_ZONE)
        assert (local.hour, local.minute // 30) in {(6, 0), (14, 0), (22, 0)}


def test_pv_is_dark_at_night_and_generates_at_noon_with_clouds() -> None:
    pv = RooftopPv(peak_kw=300.0, seed=6)
    by_hour: dict[int, list[float]] = {}
    run(
        pv,
        MONDAY,
        24,
        each=lambda now: by_hour.setdefault(now.astimezone(PARK_ZONE).hour, []).append(
            pv.power_kw()
        ),
    )
    assert max(by_hour[2] + by_hour[5] + by_hour[19] + by_hour[23]) == 0.0
    assert min(by_hour[11] + by_hour[12]) > 0.0
    assert max(by_hour[11] + by_hour[12]) < 300.0 * 0.8
    assert len({round(p, 3) for p in by_hour[12]}) > 100  # clouds pass over minutes
    assert pv.grid_kw() == -pv.power_kw()
    # The sun over Binh Duong: up about 06:10, highest about 12:05 local in early March.
    assert solar_elevation_deg(MONDAY + timedelta(hours=5, minutes=50)) < 0
    assert solar_elevation_deg(MONDAY + timedelta(hours=6, minutes=30)) > 0
    noon = max(range(600, 800), key=lambda m: solar_elevation_deg(MONDAY + timedelta(minutes=m)))
    assert 11 * 60 + 45 <= noon <= 12 * 60 + 15
    assert 2.0 < pv.energy_kwh / 300.0 < 5.5  # kWh per kWp in a day, clouds and losses taken


def test_the_same_seed_gives_the_same_day() -> None:
    def day(seed: int) -> list[object]:
        rng = random.Random(seed)
        outcome: list[object] = []
        for make in PHYSICS.values():
            machine = vary(make(), rng)
            run(machine, MONDAY, 24, dt_s=30)
            outcome += [machine.energy_kwh, machine.values(), machine.violations()]
        return outcome

    assert day(11) == day(11)
    assert day(11) != day(12)


def test_the_watchdog_puts_back_local_control_in_process() -> None:
    pump = TankPump(seed=1)
    run(pump, MONDAY, 1, each=lambda now: pump.inputs.update(enable=False))  # never armed
    assert not pump.failsafe
    assert pump.inputs["enable"] is False
    pump.inputs["heartbeat"] = 1  # seen at the next step, 01:00:10
    now = run(pump, MONDAY + timedelta(hours=1), 70 / 3600)
    assert not pump.failsafe
    assert pump.inputs["enable"] is False
    now = run(pump, now, 10 / 3600)  # 70 s unchanged
    assert pump.failsafe
    assert pump.inputs["enable"] is True
    assert pump.failsafe_trips == 1
    pump.inputs["enable"] = False  # a silent agent cannot inhibit it again
    now = run(pump, now, 10 / 3600)
    assert pump.inputs["enable"] is True
    pump.inputs.update(heartbeat=2, enable=False)  # the agent is back
    run(pump, now, 10 / 3600)
    assert not pump.failsafe
    assert pump.inputs["enable"] is False
    assert pump.failsafe_trips == 1


async def read_all(driver: OpcUaDriver, clock: SimClock) -> dict[str, Reading]:
    readings = {}
    for group in driver.poll_groups():
        readings.update({r.point.split("/")[1]: r for r in await driver.read(group, clock.now())})
    return readings


async def test_a_silent_agents_inhibit_times_out_on_the_plc(
    tmp_path: Path, clock: SimClock
) -> None:
    """Two compressors on one server (one PLC), each under its own node-id prefix. The agent
    inhibits the first and stops beating: after the watchdog time in simulated time the
    compressor is back under local control, says so, and the other was never touched."""
    model = load_opcua_model("air-compressor")
    first, second = AirCompressor(seed=1), AirCompressor(seed=2)
    maps = [served_map(model, "compressor-1"), served_map(model, "compressor-2")]
    assert maps[0].points["enable"].node_id == "ns=2;s=compressor-1.Compressor.Enable"
    machines = [SimulatedMachine(maps[0], first), SimulatedMachine(maps[1], second)]
    async with OpcUaSimulator(
        machines, clock=clock, port=free_port(), pki=tmp_path / "server", step_s=1
    ) as server:
        device = maps[0].model_copy(update={"name": "compressor-1", "endpoint": server.url})
        async with OpcUaDriver(device, clock) as driver:
            await driver.write("compressor-1/heartbeat", 1)
            await driver.write("compressor-1/enable", False)
            await clock.advance(30)
            readings = await read_all(driver, clock)
            assert readings["enable"].value is False
            assert readings["failsafe"].value is False
            assert readings["power_kw"].value == 0.0
            assert readings["heartbeat"].value == 1

            await clock.advance(31)  # 61 s without a change of the heartbeat
            readings = await read_all(driver, clock)
            assert readings["enable"].value is True
            assert readings["failsafe"].value is True
            assert readings["power_kw"].value == first.rated_kw  # loads: pressure is low
            assert first.failsafe_trips == 1
            assert second.failsafe_trips == 0
            assert second.inputs["enable"] is True

            await driver.write("compressor-1/heartbeat", 2)  # the agent is back
            await driver.write("compressor-1/enable", False)
            await clock.advance(1)
            readings = await read_all(driver, clock)
            assert readings["failsafe"].value is False
            assert readings["enable"].value is False
    # Only what changed is written: at most the two compressors' five moving values a step.
    assert server.stats.steps == 62
    assert server.stats.writes <= 5 * 2 * server.stats.steps
