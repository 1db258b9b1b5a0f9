"""How a simulated day is scored: ground truth from the plant models, not from the agent.

The agent's own summaries could flatter it; the bench therefore records, at every billing
window boundary, what the simulated meter really counted and what the machines really did,
and scores that: peak window demand, cost at the tariff, energy in peak hours, CO2, time over
the limit, process-band breaches, deadlines missed and switching. The perfect-hindsight bound
is the planner's MILP solved once on the realised day: the base load as it was, and every
batch and charging session known in advance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from edge_agent.clock import Clock
from edge_agent.control.planner import DeferrableLoad, PlanProblem, solve
from edge_agent.energy.tariff import EmissionsConfig, TariffConfig, price_at

from .equipment import BatchFurnace, Charger, Machine

__all__ = ["FactoryRecord", "Recorder", "hindsight", "score"]


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
            self._last[name] = (meter, energies)
            record.violations = {m: dict(machine.violations()) for m, machine in machines.items()}


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
    hours = window_s / 3600
    demand = [kwh / hours for kwh in record.import_kwh]
    prices = [price_at(tariff, start, zone) for start in record.window_starts]
    cost = sum(kwh * price for kwh, (_, price) in zip(record.import_kwh, prices, strict=True))
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
        "energy_kwh": round(sum(record.import_kwh), 1),
        "peak_window_demand_kw": round(max(demand, default=0.0), 1),
        "cost_vnd": round(cost),
        "peak_hours_kwh": round(peak_kwh, 1),
        "co2_kg": round(sum(record.import_kwh) * emissions.grid_kg_co2_per_kwh, 1),
        "over_limit_kw_min": round(over, 1),
        "windows_over_limit": 0 if limit is None else sum(kw > limit + 1e-6 for kw in demand),
        "process_band": process,
        "deadlines_missed": round(
            sum(v.get("deadline_missed", 0.0) for v in record.violations.values())
        ),
        "charging_shortfall_kwh": round(
            sum(v.get("shortfall_kwh", 0.0) for v in record.violations.values()), 1
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
    time_limit_s: float = 20.0,
) -> dict[str, object]:
    """The cheapest the day could have been, knowing it all in advance: the realised load
    without the batches and charging sessions, and those placed by the MILP."""
    starts = record.window_starts
    if not starts:
        return {}
    hours = window_s / 3600
    movable = {n: m for n, m in machines.items() if isinstance(m, BatchFurnace | Charger)}
    # A furnace draws its idle power between batches wherever the batches go.
    idle_kw = sum(m.idle_kw for m in movable.values() if isinstance(m, BatchFurnace))
    base = [
        (record.import_kwh[i] - sum(record.machine_kwh[n][i] for n in movable)) / hours + idle_kw
        for i in range(len(starts))
    ]
    first, slots = starts[0], len(starts)

    def slot_of(moment: datetime) -> int:
        return max(0, min(slots, math.floor((moment - first).total_seconds() / window_s)))

    def slot_after(moment: datetime) -> int:
        """A bound is relaxed: a job may use the whole slot its deadline falls in."""
        return max(0, min(slots, math.ceil((moment - first).total_seconds() / window_s)))

    loads: list[DeferrableLoad] = []
    local = ZoneInfo(zone)
    days = sorted(
        {(first + timedelta(seconds=window_s * i)).astimezone(local).date() for i in range(slots)}
    )
    for name, machine in movable.items():
        for day in days:
            if isinstance(machine, BatchFurnace):
                for k, batch in enumerate(machine.day_batches(day)):
                    earliest, deadline = slot_of(batch.release), slot_after(batch.deadline)
                    length = max(1, math.ceil(batch.duration_s / window_s))
                    if earliest >= slots:
                        continue
                    loads.append(
                        DeferrableLoad(
                            name=f"{name}#{day}#{k}",
                            power_kw=batch.kw - machine.idle_kw,
                            batch_slots=length,
                            earliest=earliest,
                            deadline=max(deadline, earliest + length),
                        )
                    )
            else:
                for k, session in enumerate(machine.day_sessions(day)):
                    earliest = slot_of(session.arrival)
                    if earliest >= slots:
                        continue
                    kw = min(machine.rated_kw, session.max_kw)
                    # A session that outlasts the day needs only what fits in the day.
                    room = kw * (slots - earliest) * hours
                    loads.append(
                        DeferrableLoad(
                            name=f"{name}#{day}#{k}",
                            power_kw=kw,
                            energy_kwh=min(session.energy_kwh, room),
                            earliest=earliest,
                            deadline=max(earliest + 1, slot_after(session.departure)),
                        )
                    )
    prices = tuple(price_at(tariff, s, zone)[1] for s in starts)
    limit = record.limit_kw or 1e9
    problem = PlanProblem(
        slot_s=window_s,
        price_vnd_per_kwh=prices,
        base_kw=tuple(max(0.0, b) for b in base),
        pv_kw=(0.0,) * slots,
        limit_kw=(limit,) * slots,
        loads=tuple(loads),
    )
    plan = solve(problem, time_limit_s=time_limit_s, mip_gap=1e-4)
    power = [
        base[t] + sum(load.power_kw for load in loads if plan.running[load.name][t])
        for t in range(slots)
    ]
    cost = sum(max(0.0, kw) * hours * price for kw, price in zip(power, prices, strict=True))
    return {
        "cost_vnd": round(cost),
        "peak_window_demand_kw": round(max(power), 1),
        "status": plan.status,
        "gap": plan.gap,
        "jobs": len(loads),
        "shortfall_kwh": round(sum(plan.shortfall_kwh.values()), 1),
    }
