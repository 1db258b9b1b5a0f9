"""Storage loads as linear stores: the chiller's tank, the compressor's receiver, the pump's tank.

What a bound and a score need to know about a machine that stores its work: its state in the
process's own unit (supply °C, receiver bar gauge, tank level %), how far one kWh drawn above
its floor moves that state (`gain_per_kwh`, negative for the chiller: cooling lowers the
temperature), how far the process moves it over a stretch of time (`process_change`), and the
band every control keeps it in. The physics is the machine model's own, made linear by
taking the on/off duty over a window as a fraction: a relaxation, never a restriction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .equipment import AirCompressor, Chiller, Machine, TankPump
from .equipment.chiller import _WATER_KJ_PER_M3_K
from .equipment.compressor import _ATMOSPHERE_BAR

__all__ = ["INTEGRATION_STEP_S", "StoreModel", "deficit_kwh", "process_change", "store_model"]

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
        # Loaded it draws rated and delivers `fad_m3_min`; unloaded running delivers nothing
        # and is left out (it only adds energy), so the floor is 0.
        gain = machine.fad_m3_min * 60.0 / machine.rated_kw * bar_per_m3
        return StoreModel(
            "bar", now, min(machine.min_bar, now), max(high, now), 0.0, machine.rated_kw, gain
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
