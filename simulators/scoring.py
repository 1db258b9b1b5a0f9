"""How a simulated day is scored: ground truth from the plant models, not from the agent.

The agent's own summaries could flatter it; the bench therefore records, at every billing
window boundary, what the simulated meter really counted and what the machines really did,
and scores that: peak window demand, cost at the tariff, energy in peak hours, CO2, time over
the limit, process-band breaches, deadlines missed and switching.

Every run is scored on the same work: what a run leaves undone at the end of the day (a
batch, a session, a store emptier than it started; carried.py) is carried, charged at the
price of the moment after the end and added to its energy and cost (`carried_kwh`,
`carried_vnd`); a carried batch that cannot finish by its deadline counts as missed.

The perfect-hindsight bound (bound.py) is solved once on the no-control run's realised day;
`check_bound` says when a run is cheaper than it, which means the bound is wrong or the run
broke one of the constraints the bound assumes of an acceptable control.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.clock import Clock
from edge_agent.control.config import LoadConfig
from edge_agent.energy.tariff import EmissionsConfig, TariffConfig, price_at

from .bound import BoundDay, export_risk_windows, solve_bound
from .carried import Leftover, carried_work, left_at
from .equipment import AirCompressor, BatchFurnace, Charger, Machine
from .stores import deficit_kwh, store_model

__all__ = ["FactoryRecord", "Recorder", "check_bound", "hindsight", "motor_sheds", "score"]


@dataclass
class FactoryRecord:
    name: str
    limit_kw: float | None
    window_starts: list[datetime] = field(default_factory=list)
    import_kwh: list[float] = field(default_factory=list)
    """The meter's import per billing window."""
    machine_kwh: dict[str, list[float]] = field(default_factory=dict)
    """Each machine's energy per billing window."""
    violations: dict[str, dict[str, float]] = field(default_factory=dict)
    actions: list[dict[str, object]] = field(default_factory=list)
    """Actions written to the plant, for the switching count and min on/off checks."""
    store_start: dict[str, float] = field(default_factory=dict)
    """Each storage load's state at the first window boundary (the bound starts there)."""
    store_deficit_kwh: dict[str, float] = field(default_factory=dict)
    """At the last boundary: the energy each store needs to hold what it held at the first."""
    left: list[Leftover] = field(default_factory=list)
    """At the last boundary: the work released and not done."""


class Recorder:
    """Reads the plant at every window boundary of the simulated clock."""

    def __init__(
        self,
        clock: Clock,
        window_s: int,
        factories: Mapping[str, tuple[Callable[[float], float], Mapping[str, Machine]]],
        limits: Mapping[str, float | None],
    ) -> None:
        """`factories`: name -> (the meter's import register at time t, its machines)."""
        self._clock = clock
        self._window_s = window_s
        self._factories = factories
        self.records = {name: FactoryRecord(name, limits.get(name)) for name in factories}
        self._last: dict[str, tuple[float, dict[str, float]]] = {}

    async def run(self, until: datetime) -> None:
        now = self._clock.now()
        boundary = math.ceil(now.timestamp() / self._window_s) * self._window_s
        moment = datetime.fromtimestamp(boundary, now.tzinfo)
        while moment <= until:
            await self._clock.sleep_until(moment)
            self.sample(moment)
            moment += timedelta(seconds=self._window_s)

    def sample(self, at: datetime) -> None:
        for name, (register, machines) in self._factories.items():
            meter = register(at.timestamp())
            energies = {m: machine.energy_kwh for m, machine in machines.items()}
            record = self.records[name]
            if name in self._last:
                last_meter, last_energies = self._last[name]
                record.window_starts.append(at - timedelta(seconds=self._window_s))
                record.import_kwh.append(meter - last_meter)
                for m, kwh in energies.items():
                    record.machine_kwh.setdefault(m, []).append(kwh - last_energies[m])
            else:
                record.store_start = {
                    m: store.state
                    for m, machine in machines.items()
                    if (store := store_model(machine)) is not None
                }
            self._last[name] = (meter, energies)
            record.violations = {m: dict(machine.violations()) for m, machine in machines.items()}
            record.store_deficit_kwh = {
                m: deficit_kwh(store, record.store_start[m])
                for m, machine in machines.items()
                if m in record.store_start and (store := store_model(machine)) is not None
            }
            record.left = left_at(machines, at)


_HARD = ("pressure_below_min_bar_s", "temp_above_max_k_s", "level_below_min_pct_s")


def score(
    record: FactoryRecord,
    *,
    window_s: int,
    tariff: TariffConfig,
    zone: str,
    emissions: EmissionsConfig,
    min_times: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, object]:
    """The run's figures; energy, cost and CO2 include the work carried past the end."""
    hours = window_s / 3600
    demand = [kwh / hours for kwh in record.import_kwh]
    prices = [price_at(tariff, start, zone) for start in record.window_starts]
    cost = sum(kwh * price for kwh, (_, price) in zip(record.import_kwh, prices, strict=True))
    carried_kwh, carried_vnd, late, short = 0.0, 0.0, 0, 0.0
    if record.window_starts:
        end = record.window_starts[-1] + timedelta(seconds=window_s)
        carried = carried_work(record.left, end)
        carried_kwh = carried.energy_kwh + sum(record.store_deficit_kwh.values())
        carried_vnd = carried_kwh * price_at(tariff, end, zone)[1]
        late, short = carried.deadlines_missed, carried.shortfall_kwh
    energy = sum(record.import_kwh) + carried_kwh
    peak_kwh = sum(
        kwh for kwh, (band, _) in zip(record.import_kwh, prices, strict=True) if band == "peak"
    )
    limit = record.limit_kw
    over = 0.0 if limit is None else sum(max(0.0, kw - limit) * window_s / 60 for kw in demand)
    process = {
        key: round(sum(v.get(key, 0.0) for v in record.violations.values()), 1) for key in _HARD
    }
    written = [a for a in record.actions if a.get("written")]
    return {
        "energy_kwh": round(energy, 1),
        "peak_window_demand_kw": round(max(demand, default=0.0), 1),
        "cost_vnd": round(cost + carried_vnd),
        "carried_kwh": round(carried_kwh, 1),
        "carried_vnd": round(carried_vnd),
        "peak_hours_kwh": round(peak_kwh, 1),
        "co2_kg": round(energy * emissions.grid_kg_co2_per_kwh, 1),
        "over_limit_kw_min": round(over, 1),
        "windows_over_limit": 0 if limit is None else sum(kw > limit + 1e-6 for kw in demand),
        "process_band": process,
        "deadlines_missed": late
        + round(sum(v.get("deadline_missed", 0.0) for v in record.violations.values())),
        "carried_deadlines_missed": late,
        "charging_shortfall_kwh": round(
            short + sum(v.get("shortfall_kwh", 0.0) for v in record.violations.values()), 1
        ),
        "interrupts_refused": round(
            sum(v.get("batch_interrupt_refused", 0.0) for v in record.violations.values())
        ),
        "min_on_off_breaches": _min_time_breaches(written, min_times or {}),
        "switching": len(written),
    }


def _min_time_breaches(
    actions: list[dict[str, object]], min_times: Mapping[str, tuple[float, float]]
) -> int:
    """Writes that switched a load back before its minimum on (off) time had passed."""
    breaches = 0
    last: dict[str, tuple[datetime, bool]] = {}
    for action in sorted(actions, key=lambda a: datetime.fromisoformat(str(a["at"]))):
        load, on = str(action["load"]), bool(action["on"])
        at = datetime.fromisoformat(str(action["at"]))
        if load in last and action["binding"] not in ("process band", "safe state"):
            then, was_on = last[load]
            min_on, min_off = min_times.get(load, (0.0, 0.0))
            held = (at - then).total_seconds()
            if was_on != on and held < (min_on if was_on else min_off):
                breaches += 1
        last[load] = (at, on)
    return breaches


def hindsight(
    record: FactoryRecord,
    machines: Mapping[str, Machine],
    *,
    window_s: int,
    tariff: TariffConfig,
    zone: str,
    loads: Sequence[LoadConfig] | None = None,
    time_limit_s: float = 120.0,
) -> dict[str, Any]:
    """The perfect-hindsight bound on the no-control run's `record` and `machines`
    (bound.py): the day's realised load besides the movable machines, every batch, session
    and store placed knowing it all, no window above that run's peak, no more over the
    limit than it had. `loads`: every control's loads (the agent's and the limiter's), for
    how long their sheds may stop a compressor's motor (None: any time, the loosest).
    Empty without a window."""
    starts = record.window_starts
    if not starts:
        return {}
    hours = window_s / 3600
    movable = {
        n: m
        for n, m in machines.items()
        if isinstance(m, BatchFurnace | Charger) or store_model(m) is not None
    }
    base = [
        (record.import_kwh[k] - sum(record.machine_kwh[n][k] for n in movable)) / hours
        for k in range(len(starts))
    ]
    demand = [kwh / hours for kwh in record.import_kwh]
    limit = record.limit_kw
    end = starts[-1] + timedelta(seconds=window_s)
    day = BoundDay(
        window_starts=starts,
        window_s=window_s,
        price_vnd_per_kwh=[price_at(tariff, s, zone)[1] for s in starts],
        after_price_vnd_per_kwh=price_at(tariff, end, zone)[1],
        base_kw=base,
        machines=movable,
        store_start=record.store_start,
        limit_kw=limit,
        peak_cap_kw=max(demand),
        over_cap_kw_min=None
        if limit is None
        else sum(max(0.0, kw - limit) * window_s / 60 for kw in demand),
        motor_sheds={} if loads is None else motor_sheds(movable, loads, starts[0], end, zone),
        zone=zone,
    )
    result = solve_bound(day, time_limit_s=time_limit_s)
    result["export_risk_windows"] = export_risk_windows(
        record.import_kwh, record.machine_kwh, machines
    )
    return result


def motor_sheds(
    machines: Mapping[str, Machine],
    loads: Sequence[LoadConfig],
    start: datetime,
    end: datetime,
    zone: str,
) -> dict[str, tuple[int, float]]:
    """Per compressor, the most sheds any of the controls may make of it over [start, end)
    (each local day's budget) and the longest a shed holds it off; (0, 0) where no control
    may shed it. A load switches the machine of its device."""
    local = ZoneInfo(zone)
    days = len(
        {start.astimezone(local).date(), (end - timedelta(seconds=1)).astimezone(local).date()}
    )
    allowed: dict[str, tuple[int, float]] = {}
    for name, machine in machines.items():
        if isinstance(machine, AirCompressor):
            mine = [load for load in loads if load.device == name and load.sheddable]
            allowed[name] = (
                max((load.max_sheds_per_day * days for load in mine), default=0),
                max((load.max_off_s for load in mine), default=0.0),
            )
    return allowed


_TOLERANCE = 2e-4
"""How far below the bound a run may come before it is reported: the meter integrates the
machines' power a step apart from their own registers (some 0.5 kWh a window either way),
and the bound's process draws are integrated on a 5 s grid."""


def check_bound(per: Mapping[str, Any]) -> list[str]:
    """Problems with one factory's score (`per`: mode -> score, with "hindsight" and
    "none"): every run cheaper than the bound, with the acceptable-control constraint it
    broke if it broke one."""
    bound = per.get("hindsight")
    none = per.get("none")
    if not bound or not none or bound.get("cost_vnd") is None:
        return []
    floor = bound.get("cost_lower_vnd")
    lower = float(floor if isinstance(floor, int | float) else bound["cost_vnd"])
    allowed = _TOLERANCE * abs(lower) + 500.0
    problems = []
    for mode, figures in per.items():
        if mode == "hindsight" or not isinstance(figures, Mapping) or "cost_vnd" not in figures:
            continue
        cost = float(figures["cost_vnd"])
        if cost >= lower - allowed:
            continue
        broke = _broken(figures, none)
        problems.append(
            f"{mode}: a run cheaper than the perfect-hindsight bound: the bound is wrong or the "
            f"run broke a constraint; cost {cost:,.0f} VND, bound {lower:,.0f} VND"
            + (f"; it broke: {', '.join(broke)}" if broke else "; it broke none")
        )
    return problems


def _broken(figures: Mapping[str, object], none: Mapping[str, object]) -> list[str]:
    """Which constraints of an acceptable control a run broke, against no control's."""

    def number(source: Mapping[str, object], key: str) -> float:
        value = source.get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    broke = []
    if number(figures, "peak_window_demand_kw") > number(none, "peak_window_demand_kw") + 0.1:
        broke.append("peak window demand above no control's")
    if number(figures, "over_limit_kw_min") > number(none, "over_limit_kw_min") + 0.1:
        broke.append("more kW·min over the limit than no control")
    if number(figures, "deadlines_missed") > 0:
        broke.append("a deadline missed")
    if number(figures, "charging_shortfall_kwh") > number(none, "charging_shortfall_kwh") + 0.1:
        broke.append("a charging shortfall")
    band = figures.get("process_band")
    if isinstance(band, Mapping) and sum(float(v) for v in band.values()) > 0:
        broke.append("a process band breached")
    return broke
