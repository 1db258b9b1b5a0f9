"""The perfect-hindsight bound: the cheapest any acceptable control could have made the day.

One MILP on the realised day, in billing windows, over everything a control may move, built
from the machine models and their realised process demand:

- batch furnaces: every batch released in the day at its real energy, non-interruptible,
  between its release and its deadline, one at a time per furnace, the furnace's idle power
  where none runs;
- chargers: every session that arrives in the day, any power up to what the car and the
  charger take between arrival and departure, its energy hard;
- storage loads (stores.py): the chiller's tank temperature, the compressor's receiver
  pressure and the pump's tank level, moved by the machine's delivery and by the process's
  realised draw, inside their bands at every window boundary;
- everything else (base load, PV, moulders) as realised: the meter's import per window less
  the movable machines' realised energy.

Work released in the day is done whenever it runs: what a batch or a session does after the
end of the day costs the price of the moment after the end (as each run's carried work does,
carried.py), and fits before its deadline or departure. A store may end below its start
only by paying for the refill at that same price (each run is charged the same), so the
bound cannot borrow from a tank for nothing.

Acceptable controls: every piece of work done (hard; a session that cannot physically get
its energy gets the smallest shortfall, reported), process bands kept (a breach only where
no schedule avoids it, at a penalty, reported), and no worse than no control: no window's
demand above the no-control run's peak window, no more kW·min over the limit in total. A
control that breaks one of these has failed anyway, so the bound may assume them; a run
cheaper than the bound that broke none says the bound is wrong (`check_bound`).

Relaxations, each looser than what any control can do, so the optimum stays a lower bound:
- a batch may start anywhere in continuous time: its start is a convex combination of two
  neighbouring points of a 5-minute grid (an SOS2 over the grid). Releases, durations,
  deadlines and window edges are on that grid, so each window's energy and each 5-minute
  step's occupancy is exactly affine in the start between two grid points; the one-at-a-
  time rule is kept on occupancies (Σ ≤ 1 per step), which any real schedule satisfies.
- a store's power over a window is continuous between its floor and rated: the duty of an
  on/off machine as a fraction, which contains every on/off pattern; the band is enforced
  at window boundaries only, with a minute of the machine's delivery as room past its own
  switch.
- a compressor's unloaded running (energy with no air) is what its motor's own switch
  leaves of the time it is not loaded, at the lowest demand around the window and 2 % less
  (`unloaded_on_share`), less one unloaded kW for every hour a shed stops the motor; the
  stopped hours are shares of the day's sheds that the controls' load policies allow
  (`motor_sheds`), each at most the receiver's fall to cut-in, or to the process minimum
  within the maximum off time (`motor_off_per_shed_s`). Without load policies it is left
  out, the loosest.
- a session may draw any power up to its most, from its arrival, in parallel with nothing
  else on that charger (sessions of one charger do not overlap in the models).
- demand and cost are per window: import is at least the window's net demand and at least
  zero, which is what the meter's register can only exceed.
- the after-end work has no window, no limit and no peak.

What it assumes: the no-control run never exported within a window (the meter clips a
negative net at zero, so in a window where it did the realised base load reads higher than
it was); `export_risk_windows` counts the windows where the no-control import came within
the PV's generation of zero, where the assumption may not hold.

Also solved on the same model (work done and bands as in the cost-optimal solution, no
cost): the lowest achievable peak window demand and the lowest kW·min over the limit; the
solver's dual bounds are reported, which no control can beat.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import highspy
import numpy as np

from edge_agent.control.plan_milp import new_highs

from .equipment import BatchFurnace, Charger, Machine, RooftopPv
from .stores import (
    StoreModel,
    motor_off_per_shed_s,
    process_change,
    store_model,
    unloaded_on_share,
)

__all__ = ["GRID_S", "BoundDay", "solve_bound"]

GRID_S = 300
"""The batches' start grid, s: releases, durations and deadlines are whole 5 minutes."""

SHORTFALL_VND_PER_KWH = 100_000.0
"""What an undone kWh (a session short, a store out of its band) costs the bound: some thirty
times the peak price, so it is done wherever it physically can be."""

_OPTIONS: dict[str, bool | int | float | str] = {
    "output_flag": False,
    "threads": 1,
    "random_seed": 0,
}


@dataclass(frozen=True)
class BoundDay:
    """The realised day the bound is solved on."""

    window_starts: Sequence[datetime]
    window_s: int
    price_vnd_per_kwh: Sequence[float]
    """Each window's price, at its start."""
    after_price_vnd_per_kwh: float
    """The price of the moment after the end: for work carried past it."""
    base_kw: Sequence[float]
    """Each window's demand besides the movable machines', kW (their floors not included:
    the model adds a furnace's idle and a chiller's standby)."""
    machines: Mapping[str, Machine]
    """The movable machines: batch furnaces, chargers and stores."""
    store_start: Mapping[str, float] = field(default_factory=dict)
    """Each store's state at the day's start (else the model's present state)."""
    limit_kw: float | None = None
    peak_cap_kw: float | None = None
    """No window's demand above this (the no-control run's peak window)."""
    over_cap_kw_min: float | None = None
    """No more kW·min over the limit than this (the no-control run's)."""
    motor_sheds: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    """Per compressor, the sheds the controls may make of it in the day and the longest one
    holds it off, s: each stops its motor for at most `motor_off_per_shed_s` ((0, 0) for one
    no control may shed). A compressor not named may be stopped at any time, its unloaded
    running all saved (the loosest)."""
    zone: str = "Asia/Ho_Chi_Minh"

    @property
    def end(self) -> datetime:
        return self.window_starts[-1] + timedelta(seconds=self.window_s)


class _Lp:
    """Columns, rows and triplets gathered in lists, passed to HiGHS in one call."""

    def __init__(self) -> None:
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.cost: list[float] = []
        self.integer: list[int] = []
        self.row_lower: list[float] = []
        self.row_upper: list[float] = []
        self.r: list[int] = []
        self.c: list[int] = []
        self.v: list[float] = []

    def col(self, lower: float, upper: float, cost: float = 0.0, *, integer: bool = False) -> int:
        self.lower.append(lower)
        self.upper.append(upper)
        self.cost.append(cost)
        self.integer.append(1 if integer else 0)
        return len(self.lower) - 1

    def row(self, terms: Mapping[int, float], lower: float, upper: float) -> int:
        index = len(self.row_lower)
        self.row_lower.append(lower)
        self.row_upper.append(upper)
        for col, value in terms.items():
            self.r.append(index)
            self.c.append(col)
            self.v.append(value)
        return index

    def add(self, row: int, col: int, value: float) -> None:
        self.r.append(row)
        self.c.append(col)
        self.v.append(value)

    def highs(self) -> highspy.Highs:
        n = len(self.lower)
        cols = np.asarray(self.c, dtype=np.int64)
        order = np.argsort(cols, kind="stable")
        start = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.bincount(cols, minlength=n), out=start[1:])
        solver = new_highs()
        for option, value in _OPTIONS.items():
            solver.setOptionValue(option, value)
        solver.passModel(
            n,
            len(self.row_lower),
            len(self.v),
            int(highspy.MatrixFormat.kColwise),
            int(highspy.ObjSense.kMinimize),
            0.0,
            np.asarray(self.cost, dtype=np.float64),
            np.asarray(self.lower, dtype=np.float64),
            np.asarray(self.upper, dtype=np.float64),
            np.asarray(self.row_lower, dtype=np.float64),
            np.asarray(self.row_upper, dtype=np.float64),
            start,
            np.asarray(self.r, dtype=np.int32)[order],
            np.asarray(self.v, dtype=np.float64)[order],
            np.asarray(self.integer, dtype=np.int32),
        )
        return solver


_INF = math.inf


@dataclass
class _Model:
    """The MILP and the columns the results are read from."""

    lp: _Lp
    imports: list[int]
    over: list[int]
    peak: int
    over_row: int | None
    penalty_row: int
    window_min: float
    """A window's length, min: kW over the limit in a window times this is its kW·min."""
    energy_after: dict[int, float] = field(default_factory=dict)
    """Column -> kWh it stands for after the end (batch starts, sessions, store refills)."""
    shortfall: list[int] = field(default_factory=list)
    slack: dict[int, float] = field(default_factory=dict)
    """Band slack column -> kWh per unit."""
    penalty: dict[int, float] = field(default_factory=dict)
    machine_kwh: dict[str, dict[int, float]] = field(default_factory=dict)
    """Machine -> column -> kWh it stands for in the day, above the machine's floor."""
    floor_kwh: dict[str, float] = field(default_factory=dict)
    """Machine -> what it draws in the day whatever the control (idle, standby)."""
    jobs: int = 0
    late_batches: int = 0


def _local_days(day: BoundDay) -> list[date]:
    local = ZoneInfo(day.zone)
    return sorted({start.astimezone(local).date() for start in day.window_starts})


def _build(day: BoundDay) -> _Model:
    lp = _Lp()
    windows, hours = len(day.window_starts), day.window_s / 3600
    imports = [
        lp.col(0.0, _INF, price * hours) for price in day.price_vnd_per_kwh
    ]  # kW over the window
    peak = lp.col(0.0, _INF)
    site = [lp.row({imports[k]: 1.0}, day.base_kw[k], _INF) for k in range(windows)]
    for k in range(windows):
        lp.row({imports[k]: 1.0, peak: -1.0}, -_INF, 0.0)
    over: list[int] = []
    over_row = None
    if day.limit_kw is not None:
        over = [lp.col(0.0, _INF) for _ in range(windows)]
        for k in range(windows):
            lp.row({over[k]: 1.0, imports[k]: -1.0}, -day.limit_kw, _INF)
        over_row = lp.row(dict.fromkeys(over, day.window_s / 60), -_INF, _INF)
    model = _Model(lp, imports, over, peak, over_row, penalty_row=-1, window_min=day.window_s / 60)
    for name, machine in day.machines.items():
        if isinstance(machine, BatchFurnace):
            _furnace(model, day, name, machine, site)
        elif isinstance(machine, Charger):
            _charger(model, day, name, machine, site)
        elif store_model(machine) is not None:
            _store(model, day, name, machine, site)
    model.penalty_row = lp.row(model.penalty, -_INF, _INF)
    return model


def _furnace(
    model: _Model, day: BoundDay, name: str, furnace: BatchFurnace, site: list[int]
) -> None:
    """Each batch as a convex combination of neighbouring grid starts (SOS2 by binaries on
    the cells between them); one batch at a time on the occupancy of each 5-minute step."""
    lp, hours = model.lp, day.window_s / 3600
    first, end = day.window_starts[0], day.end
    per_window = day.window_s // GRID_S
    end_step = len(day.window_starts) * per_window
    occupancy: dict[int, dict[int, float]] = {}
    for row in site:  # idle where no batch runs; a batch's columns add what it draws above
        lp.row_lower[row] += furnace.idle_kw
    model.floor_kwh[name] = furnace.idle_kw * hours * len(site)
    drawn = model.machine_kwh.setdefault(name, {})
    batches = [b for d in _local_days(day) for b in furnace.day_batches(d) if b.release < end]
    for batch in batches:
        release = max(0, math.floor((batch.release - first).total_seconds() / GRID_S))
        steps = max(1, round(batch.duration_s / GRID_S))
        latest = math.ceil((batch.deadline - first).total_seconds() / GRID_S) - steps
        if latest < release:
            model.late_batches += 1  # no control can meet it: it starts at release
            latest = release
        model.jobs += 1
        starts = range(release, latest + 1)
        weights = [lp.col(0.0, 1.0) for _ in starts]
        lp.row(dict.fromkeys(weights, 1.0), 1.0, 1.0)
        if len(weights) > 1:
            cells = [lp.col(0.0, 1.0, integer=True) for _ in range(len(weights) - 1)]
            lp.row(dict.fromkeys(cells, 1.0), 1.0, 1.0)
            for i, weight in enumerate(weights):
                near = {cells[j]: -1.0 for j in (i - 1, i) if 0 <= j < len(cells)}
                lp.row({weight: 1.0, **near}, -_INF, 0.0)
        above_idle_kwh = (batch.kw - furnace.idle_kw) * GRID_S / 3600
        for start, weight in zip(starts, weights, strict=True):
            in_window: dict[int, float] = {}
            after_kwh = 0.0
            for step in range(start, start + steps):
                occupancy.setdefault(step, {})[weight] = 1.0
                if step < end_step:
                    k = step // per_window
                    in_window[k] = in_window.get(k, 0.0) + above_idle_kwh
                else:
                    after_kwh += batch.kw * GRID_S / 3600
            for k, kwh in in_window.items():
                lp.add(site[k], weight, -kwh / hours)
            drawn[weight] = sum(in_window.values())
            if after_kwh:
                lp.cost[weight] += after_kwh * day.after_price_vnd_per_kwh
                model.energy_after[weight] = after_kwh
    for terms in occupancy.values():
        if len(terms) > 1:
            lp.row(terms, -_INF, 1.0)


def _charger(model: _Model, day: BoundDay, name: str, charger: Charger, site: list[int]) -> None:
    """Each session's energy per window, up to its power for the part of the window it is
    plugged in; what fits after the end before departure; a shortfall only if nothing else
    fits."""
    lp, hours, window = model.lp, day.window_s / 3600, timedelta(seconds=day.window_s)
    first, end = day.window_starts[0], day.end
    per_window: dict[int, dict[int, float]] = {}
    drawn = model.machine_kwh.setdefault(name, {})
    sessions = [s for d in _local_days(day) for s in charger.day_sessions(d) if s.arrival < end]
    for session in sessions:
        model.jobs += 1
        kw = min(charger.rated_kw, session.max_kw)
        arrival = max(session.arrival, first)
        terms: dict[int, float] = {}
        for k, start in enumerate(day.window_starts):
            plugged_h = (min(start + window, session.departure) - max(start, arrival)) / (
                timedelta(hours=1)
            )
            if plugged_h > 0:
                col = lp.col(0.0, kw * plugged_h)
                terms[col] = 1.0
                lp.add(site[k], col, -1.0 / hours)
                drawn[col] = 1.0
                per_window.setdefault(k, {})[col] = 1.0
        room_h = max(0.0, (session.departure - max(end, arrival)) / timedelta(hours=1))
        if room_h > 0:
            later = lp.col(0.0, kw * room_h, day.after_price_vnd_per_kwh)
            terms[later] = 1.0
            model.energy_after[later] = 1.0
        short = lp.col(0.0, session.energy_kwh, SHORTFALL_VND_PER_KWH)
        terms[short] = 1.0
        model.shortfall.append(short)
        model.penalty[short] = SHORTFALL_VND_PER_KWH
        lp.row(terms, session.energy_kwh, session.energy_kwh)
    for terms in per_window.values():
        if len(terms) > 1:
            lp.row(terms, -_INF, charger.rated_kw * hours)


def _store(model: _Model, day: BoundDay, name: str, machine: Machine, site: list[int]) -> None:
    """The state at each window boundary from the delivery (kWh above the floor) and the
    process's realised draw; the band soft only at a penalty; the refill to the start
    state, if it ends lower, at the price after the end."""
    store = store_model(machine, day.store_start.get(name))
    assert store is not None
    lp, hours = model.lp, day.window_s / 3600
    window = timedelta(seconds=day.window_s)
    unit_vnd = SHORTFALL_VND_PER_KWH / abs(store.gain_per_kwh)
    state = lp.col(store.state, store.state)
    model.floor_kwh[name] = store.floor_kw * hours * len(site)
    drawn = model.machine_kwh.setdefault(name, {})
    stops: list[int] = []
    for k, start in enumerate(day.window_starts):
        delivered = lp.col(0.0, (store.rated_kw - store.floor_kw) * hours)
        lp.add(site[k], delivered, -1.0 / hours)
        drawn[delivered] = 1.0
        if store.unloaded_kw > 0.0:
            stops.append(
                _unloaded(
                    model, day, machine, store, k=k, delivery=(delivered, drawn), site_row=site[k]
                )
            )
        following = lp.col(-_INF, _INF)
        change = process_change(machine, start, start + window)
        lp.row({following: 1.0, state: -1.0, delivered: -store.gain_per_kwh}, change, change)
        below, above = lp.col(0.0, _INF, unit_vnd), lp.col(0.0, _INF, unit_vnd)
        lp.row({following: 1.0, below: 1.0}, store.low, _INF)
        lp.row({following: 1.0, above: -1.0}, -_INF, store.high)
        for slack in (below, above):
            model.slack[slack] = 1.0 / abs(store.gain_per_kwh)
            model.penalty[slack] = unit_vnd
        state = following
    refill = lp.col(0.0, _INF, day.after_price_vnd_per_kwh)
    model.energy_after[refill] = 1.0
    if store.gain_per_kwh > 0:
        lp.row({state: 1.0, refill: store.gain_per_kwh}, store.state, _INF)
    else:
        lp.row({state: 1.0, refill: store.gain_per_kwh}, -_INF, store.state)
    for row in site:  # the floor is drawn whatever the control
        lp.row_lower[row] += store.floor_kw
    if stops and name in day.motor_sheds:
        sheds, max_off_s = day.motor_sheds[name]
        window = timedelta(seconds=day.window_s)
        per_shed_h = [
            motor_off_per_shed_s(machine, max_off_s, start, start + window) / 3600
            for start in day.window_starts
        ]
        # Each window's stopped hours are a share of a shed's most there; the shares sum to
        # the sheds of the day at most.
        lp.row(
            {col: 1.0 / max(h, 1e-9) for col, h in zip(stops, per_shed_h, strict=True)},
            -_INF,
            float(sheds),
        )


def _unloaded(
    model: _Model,
    day: BoundDay,
    machine: Machine,
    store: StoreModel,
    *,
    k: int,
    delivery: tuple[int, dict[int, float]],
    site_row: int,
) -> int:
    """A compressor's unloaded running in window k, kWh: at least its motor's own share of
    the time it is not loaded (`unloaded_on_share`), less what stopped hours save (each at
    most `unloaded_kw`, whatever the share). `delivery`: the window's loaded-energy column
    and the machine's drawn columns. Returns the window's stopped hours' column."""
    lp, hours = model.lp, day.window_s / 3600
    delivered, drawn = delivery
    start = day.window_starts[k]
    share = unloaded_on_share(machine, start, start + timedelta(seconds=day.window_s))
    unloaded = lp.col(0.0, _INF)
    stopped = lp.col(0.0, hours)
    lp.add(site_row, unloaded, -1.0 / hours)
    drawn[unloaded] = 1.0
    lp.row(
        {
            unloaded: 1.0,
            delivered: store.unloaded_kw * share / store.rated_kw,
            stopped: store.unloaded_kw,
        },
        store.unloaded_kw * share * hours,
        _INF,
    )
    return stopped


@dataclass(frozen=True)
class _Solved:
    values: list[float]
    objective: float
    dual_bound: float
    status: str


_NODES = 2_000
"""Branch-and-bound nodes a solve may take: a work limit, not a time limit, so that the
same day gives the same bound on any machine and under any load (one thread, one seed);
the time limit stays only as a backstop far above what the node limit takes."""


def _run(
    solver: highspy.Highs,
    time_limit_s: float,
    *,
    integer: bool,
    abs_gap: float,
    rel_gap: float = 1e-6,
) -> _Solved | None:
    """Solve within `_NODES` nodes (and, as a backstop, `time_limit_s`), stopping at
    `abs_gap` in the objective's own unit or at `rel_gap`; the dual bound is what the figure
    is reported as, so a gap only loosens it."""
    solver.setOptionValue("mip_max_nodes", _NODES)
    solver.setOptionValue("time_limit", max(0.05, time_limit_s))
    solver.setOptionValue("mip_abs_gap", abs_gap)
    solver.setOptionValue("mip_rel_gap", rel_gap)
    solver.run()
    info = solver.getInfo()
    status = solver.modelStatusToString(solver.getModelStatus())
    if info.primal_solution_status != int(highspy.SolutionStatus.kSolutionStatusFeasible):
        return None
    objective = float(info.objective_function_value)
    bound = float(info.mip_dual_bound) if integer else objective
    if not math.isfinite(bound):
        bound = -_INF
    return _Solved(list(solver.getSolution().col_value), objective, bound, status)


def solve_bound(day: BoundDay, *, time_limit_s: float = 120.0) -> dict[str, Any]:
    """The cost-optimal acceptable schedule, and the lowest peak and kW·min over the limit
    any schedule that does the same work can reach; see the module's docstring."""
    began = time.perf_counter()
    model = _build(day)
    lp = model.lp
    integer = any(lp.integer)
    solver = lp.highs()
    if day.peak_cap_kw is not None:
        solver.changeColBounds(model.peak, 0.0, day.peak_cap_kw + 1e-6)
    if model.over_row is not None and day.over_cap_kw_min is not None:
        solver.changeRowBounds(model.over_row, -_INF, day.over_cap_kw_min + 1e-6)
    cost = _run(solver, time_limit_s * 0.6, integer=integer, abs_gap=50.0)
    if cost is None:  # the caps from no control cannot be kept by this model: drop them
        solver.changeColBounds(model.peak, 0.0, _INF)
        if model.over_row is not None:
            solver.changeRowBounds(model.over_row, -_INF, _INF)
        cost = _run(solver, time_limit_s * 0.6, integer=integer, abs_gap=50.0)
        caps = "dropped"
    else:
        caps = "kept"
    if cost is None:
        return {"status": "infeasible", "jobs": model.jobs, "solve_s": _since(began)}
    x = cost.values
    hours = day.window_s / 3600
    penalties = sum(x[c] * p for c, p in model.penalty.items())
    demand = [x[c] for c in model.imports]
    carried = sum(x[c] * kwh for c, kwh in model.energy_after.items())
    result: dict[str, Any] = {
        "cost_vnd": round(cost.objective - penalties),
        "cost_lower_vnd": math.floor(cost.dual_bound - penalties)
        if math.isfinite(cost.dual_bound)
        else None,
        "peak_window_demand_kw": round(max(demand), 1),
        "demand_kw": [round(kw, 2) for kw in demand],
        "energy_kwh": round(sum(demand) * hours + carried, 1),
        "over_limit_kw_min": round(sum(x[c] for c in model.over) * day.window_s / 60, 1),
        "status": cost.status,
        "gap": _gap(cost.objective, cost.dual_bound),
        "jobs": model.jobs,
        "late_batches": model.late_batches,
        "shortfall_kwh": round(sum(x[c] for c in model.shortfall), 2),
        "band_slack_kwh": round(sum(x[c] * k for c, k in model.slack.items()), 2),
        "carried_kwh": round(carried, 1),
        "carried_vnd": round(carried * day.after_price_vnd_per_kwh),
        "no_control_caps": caps,
        "machine_kwh": {
            name: round(model.floor_kwh.get(name, 0.0) + sum(x[c] * k for c, k in cols.items()), 1)
            for name, cols in model.machine_kwh.items()
        },
    }
    result.update(_extremes(solver, model, x, penalties, time_limit_s * 0.2, integer=integer))
    result["solve_s"] = _since(began)
    return result


def _extremes(
    solver: highspy.Highs,
    model: _Model,
    x: list[float],
    penalties: float,
    budget_s: float,
    *,
    integer: bool,
) -> dict[str, Any]:
    """The same work and bands as the cost-optimal schedule `x` (no more penalised), no
    cost and no caps: the lowest peak, then the lowest kW·min over the limit, each within
    `budget_s`; their dual bounds are the figures no control can beat."""
    began = time.perf_counter()
    solver.changeColBounds(model.peak, 0.0, _INF)
    if model.over_row is not None:
        solver.changeRowBounds(model.over_row, -_INF, _INF)
    solver.changeRowBounds(model.penalty_row, -_INF, penalties + 1e-6 + 1e-9 * abs(penalties))
    n = len(x)
    every = np.arange(n, dtype=np.int32)
    solver.setSolution(n, every, np.asarray(x))
    objective = np.zeros(n)
    objective[model.peak] = 1.0
    solver.changeColsCost(n, every, objective)
    peak = _run(solver, budget_s, integer=integer, abs_gap=0.5, rel_gap=1e-3)
    found: dict[str, Any] = {
        "min_peak_kw": _floor1(peak.dual_bound) if peak else None,
        "min_peak_schedule_kw": round(peak.objective, 1) if peak else None,
        "min_over_limit_kw_min": 0.0,
    }
    if model.over:
        objective = np.zeros(n)
        objective[model.over] = model.window_min
        solver.changeColsCost(n, every, objective)
        solver.setSolution(n, every, np.asarray(x))
        over = _run(solver, budget_s, integer=integer, abs_gap=1.0, rel_gap=1e-3)
        found["min_over_limit_kw_min"] = _floor1(over.dual_bound) if over else None
        found["min_over_limit_schedule_kw_min"] = round(over.objective, 1) if over else None
    found["extremes_solve_s"] = _since(began)
    return found


def export_risk_windows(
    import_kwh: Sequence[float],
    machine_kwh: Mapping[str, Sequence[float]],
    machines: Mapping[str, Machine],
) -> int:
    """Windows where the no-control import came within the PV's generation of zero."""
    pv = [n for n, m in machines.items() if isinstance(m, RooftopPv)]
    return (
        sum(kwh < sum(machine_kwh[n][k] for n in pv) for k, kwh in enumerate(import_kwh))
        if pv
        else 0
    )


def _since(began: float) -> float:
    return round(time.perf_counter() - began, 2)


def _floor1(value: float) -> float | None:
    return math.floor(value * 10) / 10 if math.isfinite(value) else None


def _gap(value: float, bound: float) -> float | None:
    if not math.isfinite(bound):
        return None
    return round(max(0.0, value - bound) / max(abs(value), 1.0), 6)
