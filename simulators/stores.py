"""Storage loads as linear stores: the chiller's tank, the compressor's receiver, the pump's tank.

What a bound and a score need to know about a machine that stores its work: its state in the
process's own unit (supply °C, receiver bar gauge, tank level %), how far one kWh drawn above
its floor moves that state (`gain_per_kwh`, negative for the chiller: cooling lowers the
temperature), how far the process moves it over a stretch of time (`process_change`), and the
band every control keeps it in. The physics is the machine model's own, made linear by
taking the on/off duty over a window as a fraction: a relaxation, never a restriction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from .equipment import AirCompressor, Chiller, Machine, TankPump
from .equipment.chiller import _WATER_KJ_PER_M3_K
from .equipment.compressor import _ATMOSPHERE_BAR

__all__ = [
    "INTEGRATION_STEP_S",
    "StoreModel",
    "deficit_kwh",
    "motor_off_per_shed_s",
    "process_change",
    "store_model",
    "unloaded_on_share",
]

INTEGRATION_STEP_S = 5.0
"""The step the process's draw is integrated on, as the plant steps its physics (the bench's
poll interval is 5 to 10 s; the draws wander over 90 s or more)."""

_OVERSHOOT_S = 60.0
"""How long a machine's own switch may overshoot its cut-out: one step of the plant (at most
a minute, the PLC's watchdog) at full delivery. The band's far edge gets this much room."""


@dataclass(frozen=True)
class StoreModel:
    """One storage load, linear: state after = state + gain · kWh above the floor + process."""

    unit: str
    state: float
    """Now, in `unit`."""
    low: float
    high: float
    """The band the state stays in under any control (hard edge and switch edge with room)."""
    floor_kw: float
    """What the machine draws while delivering nothing it may not stop (the chiller's
    standby; 0 for a compressor or pump that may be stopped)."""
    rated_kw: float
    gain_per_kwh: float
    """State change per kWh drawn above the floor, in `unit`/kWh."""
    unloaded_kw: float = 0.0
    """What the machine draws running while delivering nothing (a compressor's motor
    unloaded): energy that no schedule of the delivery removes, only a stopped motor
    (`unloaded_on_share`, `motor_off_per_shed_s`); 0 for the others."""


def store_model(machine: Machine, state: float | None = None) -> StoreModel | None:
    """The machine as a store (at `state`, else its present state), or None if it is not one."""
    if isinstance(machine, Chiller):
        capacity_kj_per_k = machine.tank_m3 * _WATER_KJ_PER_M3_K
        cooling_kw = machine.rated_kw * machine.cop
        now = machine.supply_c if state is None else state
        # Running, the chiller draws rated (not standby plus rated): a duty f costs
        # f·(rated − standby) above the floor and cools f·rated·cop.
        gain = -cooling_kw * 3600.0 / capacity_kj_per_k / (machine.rated_kw - machine.standby_kw)
        room = cooling_kw * _OVERSHOOT_S / capacity_kj_per_k
        low = float(machine.inputs["setpoint_c"]) - room
        return StoreModel(
            "°C",
            now,
            min(low, now),
            max(machine.max_c, now),
            machine.standby_kw,
            machine.rated_kw,
            gain,
        )
    if isinstance(machine, AirCompressor):
        bar_per_m3 = _ATMOSPHERE_BAR / machine.receiver_m3
        now = machine.pressure_bar if state is None else state
        high = machine.cut_out_bar + machine.fad_m3_min * _OVERSHOOT_S / 60.0 * bar_per_m3
        # Loaded it draws rated and delivers `fad_m3_min`; unloaded it delivers nothing and
        # draws `unloaded_kw` while its motor runs, so the floor is 0 (a stopped motor).
        gain = machine.fad_m3_min * 60.0 / machine.rated_kw * bar_per_m3
        return StoreModel(
            "bar",
            now,
            min(machine.min_bar, now),
            max(high, now),
            0.0,
            machine.rated_kw,
            gain,
            unloaded_kw=machine.rated_kw * machine.unloaded_share,
        )
    if isinstance(machine, TankPump):
        pct_per_m3 = 100.0 / machine.tank_m3
        now = machine.level_pct if state is None else state
        high = min(100.0, machine.stop_pct + machine.flow_m3_h * _OVERSHOOT_S / 3600 * pct_per_m3)
        gain = machine.flow_m3_h / machine.rated_kw * pct_per_m3
        return StoreModel(
            "%", now, min(machine.min_pct, now), max(high, now), 0.0, machine.rated_kw, gain
        )
    return None


def process_change(machine: Machine, start: datetime, end: datetime) -> float:
    """What the process does to the store over [start, end), in its unit: the chiller's heat
    load warms the tank, the air demand and the tank's draw lower pressure and level. The
    draw is taken at the end of each step, as the plant's physics takes it."""
    step = timedelta(seconds=INTEGRATION_STEP_S)
    total = 0.0
    moment = start + step
    while moment <= end:
        if isinstance(machine, Chiller):
            capacity = machine.tank_m3 * _WATER_KJ_PER_M3_K
            total += machine.load_kw(moment) * INTEGRATION_STEP_S / capacity
        elif isinstance(machine, AirCompressor):
            bar_per_m3 = _ATMOSPHERE_BAR / machine.receiver_m3
            total -= machine.demand_m3_min(moment) / 60.0 * INTEGRATION_STEP_S * bar_per_m3
        elif isinstance(machine, TankPump):
            pct_per_m3 = 100.0 / machine.tank_m3
            total -= machine.draw_m3_h_at(moment) / 3600.0 * INTEGRATION_STEP_S * pct_per_m3
        moment += step
    return total


def deficit_kwh(model: StoreModel, start_state: float) -> float:
    """The energy, kWh, to bring the store from its state back to `start_state` when it holds
    less work than it did (0 when it holds as much or more)."""
    return max(0.0, (start_state - model.state) / model.gain_per_kwh)


_STEP_ROOM = 0.98
"""The share of the ideal unloaded running the bound keeps: the plant switches on its own
step and the bound integrates the draw on another, so a day's unloaded running comes out
a few tenths of a per cent either side of the ideal; two per cent less keeps it below."""

_DEMAND_MARGIN_S = 900.0
"""How far beyond a window the air demand is looked at for its lowest: an unloaded spell
that ends in a window may have begun up to a run-on before it."""


def unloaded_on_share(machine: Machine, start: datetime, end: datetime) -> float:
    """The least share of its unloaded time a compressor's motor runs in [start, end) on its
    own switch (1 for a machine that is not a compressor). Unloaded at cut-out, the motor
    runs until the receiver falls to cut-in or for `run_on_s`, whichever is first; the fall
    takes the band's air over the demand, so the share is run_on · demand / band air,
    taken at the lowest demand around the window (the longest spells): any schedule of the
    delivery leaves at least this share running, only a stop bought by a shed less."""
    if not isinstance(machine, AirCompressor):
        return 1.0
    band_m3 = (machine.cut_out_bar - machine.cut_in_bar) * machine.receiver_m3 / _ATMOSPHERE_BAR
    lowest = _lowest_demand_m3_min(machine, start, end)
    if band_m3 <= 0.0:
        return _STEP_ROOM
    return _STEP_ROOM * min(1.0, machine.run_on_s / 60.0 * lowest / band_m3)


def motor_off_per_shed_s(
    machine: Machine, max_off_s: float, start: datetime, end: datetime
) -> float:
    """The most motor-off time one shed of a compressor starting in [start, end) can buy.
    Held off, its receiver falls from at most the top of its band; held past the process
    minimum the band is broken, so the hold ends by then or at `max_off_s`; enabled again
    above cut-in, the motor stays stopped until the receiver falls to it. Either fall is
    taken at the lowest demand around the window (the longest)."""
    if not isinstance(machine, AirCompressor):
        return max_off_s
    model = store_model(machine)
    assert model is not None
    m3_per_bar = machine.receiver_m3 / _ATMOSPHERE_BAR
    lowest = max(_lowest_demand_m3_min(machine, start, end), 1e-6)
    to_cut_in_s = max(0.0, model.high - machine.cut_in_bar) * m3_per_bar / lowest * 60.0
    to_minimum_s = max(0.0, model.high - machine.min_bar) * m3_per_bar / lowest * 60.0
    return max(to_cut_in_s, min(max_off_s, to_minimum_s))


def _lowest_demand_m3_min(machine: AirCompressor, start: datetime, end: datetime) -> float:
    step = timedelta(seconds=INTEGRATION_STEP_S)
    margin = timedelta(seconds=_DEMAND_MARGIN_S)
    moment, last, lowest = start - margin, end + margin, math.inf
    while moment <= last:
        lowest = min(lowest, machine.demand_m3_min(moment))
        moment += step
    return lowest
