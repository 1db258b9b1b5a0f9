"""The load planner: deferrable loads over the day's slots at least cost, solved on HiGHS.

Layer 2 of the optimiser. Each slot it schedules the loads that may wait (batches,
interruptible loads with minimum runs, loads that fill a tank or a cold store) against the
time-of-use price, the PV forecast and the site's import limit; the demand limiter (layer 1)
then keeps the live demand inside the window's limit whatever the plan said.

Pure: the caller passes time as slot indices and gets a `Plan`; nothing is read or written.
The only clock read is a monotonic stopwatch that bounds the solve, so a plan always comes
back within `time_limit_s`: the MILP's best incumbent, else the last plan shifted, else
greedy rules. "No plan" is never an answer.

Soft constraints carry explicit prices (`PlanProblem.*_vnd_per_kwh`) so the MILP is never
infeasible and every breach is reported: energy above the site limit (`over_limit_kwh`),
energy a load could not get before its deadline (`shortfall_kwh`) and a storage level forced
outside its band (`band_breach`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import highspy
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "HIGHS_OPTIONS",
    "DeferrableLoad",
    "Plan",
    "PlanProblem",
    "Planner",
    "StorageBand",
    "assess",
    "rules",
    "shifted",
    "solve",
    "violations",
]

Status = Literal["optimal", "feasible", "last-plan", "rules"]
Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]

# A slot's tie-break, VND per kWh per slot index: far below any price step, it only picks the
# earliest of equally priced slots so plans are stable and reproducible.
_TIE_VND_PER_KWH = 1e-3


@dataclass(frozen=True, slots=True)
class StorageBand:
    """A tank, receiver or cold store the load fills: its level must stay in [minimum, maximum].

    `level` is in the store's own unit (m³, bar, °C of cold reserve...); `gain_per_kwh` (> 0)
    converts the load's energy into that unit, and `draw_per_slot` is the process's use of it,
    one value per slot of the problem.
    """

    level: float
    minimum: float
    maximum: float
    gain_per_kwh: float
    draw_per_slot: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class DeferrableLoad:
    """A load the planner may move in time.

    An interruptible load (`batch_slots` None) needs `energy_kwh` within [earliest, deadline)
    in runs of at least `min_run_slots`. A batch runs exactly once for `batch_slots`
    contiguous slots (its energy is `power_kw` × that time; `energy_kwh` is ignored). A band
    load keeps its store's level in band; `energy_kwh` is then usually 0.

    `running_for` > 0 says a run started that many slots ago and is locked: a batch continues
    to its end (and needs nothing more), an interruptible run keeps its minimum run. A running
    load is allowed to run from slot 0 whatever `earliest` says. A deadline past the horizon
    counts as the horizon's end: what the planner cannot see, it cannot promise.
    """

    name: str
    power_kw: float
    energy_kwh: float = 0.0
    earliest: int = 0
    deadline: int | None = None
    min_run_slots: int = 1
    batch_slots: int | None = None
    running_for: int = 0
    band: StorageBand | None = None
    priority: int = 0
    """Higher is more important: its shortfall costs more, the rules place it first."""


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """One planning instance; every per-slot tuple has one value per slot of the horizon."""

    slot_s: int
    price_vnd_per_kwh: tuple[float, ...]
    base_kw: tuple[float, ...]
    """Forecast of the site's other (non-deferrable) load."""
    pv_kw: tuple[float, ...]
    limit_kw: tuple[float, ...]
    """The site's import limit per slot; a demand-response event lowers some."""
    loads: tuple[DeferrableLoad, ...]
    co2_kg_per_kwh: float | tuple[float, ...] = 0.6592
    co2_vnd_per_kg: float = 0.0
    capacity_vnd_per_kw: float = 0.0
    """Charge on the plan's peak import above `peak_so_far_kw`."""
    peak_so_far_kw: float = 0.0
    export_allowed: bool = False
    """Exported PV earns the import price; without it, PV beyond the site's load is worth 0."""
    shortfall_vnd_per_kwh: float = 100_000.0
    """Price of energy a load misses before its deadline (× 1 + priority/1000)."""
    over_limit_vnd_per_kwh: float = 300_000.0
    """Price of energy imported above the limit: above a shortfall's, so a deadline gives way
    to the site limit (a demand-response commitment or the main breaker)."""
    band_breach_vnd_per_kwh: float = 300_000.0
    """Price of a level outside its band, per kWh of the load's energy it amounts to."""

    def __post_init__(self) -> None:
        slots = len(self.price_vnd_per_kwh)
        lengths = {
            "base_kw": len(self.base_kw),
            "pv_kw": len(self.pv_kw),
            "limit_kw": len(self.limit_kw),
        }
        if isinstance(self.co2_kg_per_kwh, tuple):
            lengths["co2_kg_per_kwh"] = len(self.co2_kg_per_kwh)
        for load in self.loads:
            if load.band is not None:
                lengths[f"{load.name}.band.draw_per_slot"] = len(load.band.draw_per_slot)
        wrong = {k: n for k, n in lengths.items() if n != slots}
        if slots == 0 or wrong:
            raise ValueError(f"{slots} price slots, but {wrong or 'no slots'}")
        if self.slot_s <= 0:
            raise ValueError("slot_s must be positive")
        names = [load.name for load in self.loads]
        if len(set(names)) != len(names):
            raise ValueError(f"load names repeat: {names}")
        for load in self.loads:
            _check_load(load)


def _check_load(load: DeferrableLoad) -> None:
    problems = []
    if load.power_kw <= 0:
        problems.append("power_kw must be positive")
    if load.energy_kwh < 0 or load.earliest < 0 or load.running_for < 0:
        problems.append("energy_kwh, earliest and running_for must not be negative")
    if load.min_run_slots < 1 or (load.batch_slots is not None and load.batch_slots < 1):
        problems.append("min_run_slots and batch_slots must be at least 1")
    if load.band is not None and (
        load.band.gain_per_kwh <= 0 or load.band.minimum > load.band.maximum
    ):
        problems.append("a band needs gain_per_kwh > 0 and minimum <= maximum")
    if problems:
        raise ValueError(f"load {load.name!r}: {'; '.join(problems)}")


@dataclass(frozen=True, slots=True)
class Plan:
    """Which load runs in which slot, and what that costs and breaches.

    `objective_vnd` is the whole objective (energy at price, CO2, capacity, penalties, churn)
    above the cost of the site's base load, evaluated the same way whatever made the plan, so
    plans of different statuses compare. `cost_vnd` is the deferrable loads' own energy cost:
    the site's import cost with them minus without them.
    """

    running: dict[str, tuple[bool, ...]]
    status: Status
    objective_vnd: float
    cost_vnd: float
    gap: float | None
    solve_s: float
    shortfall_kwh: dict[str, float]
    over_limit_kwh: float
    band_breach: dict[str, float] = field(default_factory=dict)
    """Per band load, the level (in the store's unit) the plan could not keep in band."""

    def starts(self, name: str) -> list[int]:
        """Slots where a run of `name` begins; slot 0 counts if it runs then."""
        on = self.running[name]
        return [t for t, now in enumerate(on) if now and (t == 0 or not on[t - 1])]


# --- Per-problem arrays -----------------------------------------------------------------


@dataclass(slots=True)
class _Spec:
    """A load reduced to what both planners need: allowed, locked and startable slots."""

    load: DeferrableLoad
    allowed: Bools
    locked: Bools
    batch: int  # slots of a batch still to place; 0 for interruptible loads or a locked batch
    is_batch: bool
    energy_kwh: float  # interruptible: energy needed; batch: the whole batch's
    run: int  # minimum run in slots (1 for batches: their run is fixed)
    was_on: bool  # on in the slot before slot 0
    startable: Bools  # interruptible: slots a new run may begin (it fits before the deadline)
    shortfall_price: float  # VND per kWh missed


@dataclass(slots=True)
class _Arrays:
    slots: int
    hours: float
    price: Floats
    weight: Floats  # price plus CO2 per kWh imported
    base_net: Floats  # base - pv, kW
    limit: Floats
    specs: list[_Spec]


def _arrays(problem: PlanProblem) -> _Arrays:
    slots = len(problem.price_vnd_per_kwh)
    price = np.asarray(problem.price_vnd_per_kwh, dtype=np.float64)
    co2 = np.broadcast_to(np.asarray(problem.co2_kg_per_kwh, dtype=np.float64), (slots,))
    return _Arrays(
        slots=slots,
        hours=problem.slot_s / 3600.0,
        price=price,
        weight=price + problem.co2_vnd_per_kg * co2,
        base_net=np.asarray(problem.base_kw, dtype=np.float64)
        - np.asarray(problem.pv_kw, dtype=np.float64),
        limit=np.asarray(problem.limit_kw, dtype=np.float64),
        specs=[_spec(load, slots, problem) for load in problem.loads],
    )


def _spec(load: DeferrableLoad, slots: int, problem: PlanProblem) -> _Spec:
    hours = problem.slot_s / 3600.0
    end = slots if load.deadline is None else max(0, min(load.deadline, slots))
    window = np.zeros(slots, dtype=np.bool_)
    window[min(load.earliest, slots) : end] = True
    locked = np.zeros(slots, dtype=np.bool_)
    price = problem.shortfall_vnd_per_kwh * (1 + load.priority / 1000)
    if load.batch_slots is not None:
        energy = load.power_kw * load.batch_slots * hours
        batch = load.batch_slots
        if load.running_for > 0:  # a batch under way finishes; nothing else to place
            locked[: max(0, batch - load.running_for)] = True
            window, batch, energy = locked, 0, 0.0
        return _Spec(
            load=load,
            allowed=window,
            locked=locked,
            batch=batch,
            is_batch=True,
            energy_kwh=energy,
            run=1,
            was_on=load.running_for > 0,
            startable=np.zeros(slots, dtype=np.bool_),
            shortfall_price=price,
        )
    run = load.min_run_slots
    if 0 < load.running_for < run:
        locked[: run - load.running_for] = True
    allowed = window | locked
    # A run may start at t only if its minimum run fits in allowed slots.
    fits = np.convolve(allowed.astype(np.int64), np.ones(run, dtype=np.int64))[run - 1 :]
    startable = (fits[:slots] >= run) & allowed & ~locked
    startable[slots - run + 1 :] = False
    return _Spec(
        load=load,
        allowed=allowed,
        locked=locked,
        batch=0,
        is_batch=False,
        energy_kwh=load.energy_kwh,
        run=run,
        was_on=load.running_for > 0,
        startable=startable,
        shortfall_price=price,
    )


# --- Assessment: one yardstick for every plan --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Assessment:
    objective_vnd: float
    cost_vnd: float
    shortfall_kwh: dict[str, float]
    over_limit_kwh: float
    band_breach: dict[str, float]


def _imported(net_kw: Floats, export: bool) -> Floats:
    return net_kw if export else np.maximum(net_kw, 0.0)


def _band_levels(spec: _Spec, on: Bools, hours: float) -> tuple[Floats, float]:
    """The level at the end of each slot, clipped into band as the MILP's slack would, and
    the total clipped (the breach)."""
    band = spec.load.band
    assert band is not None
    rise = band.gain_per_kwh * spec.load.power_kw * hours * on - np.asarray(band.draw_per_slot)
    levels = np.empty(len(on))
    level, breach = band.level, 0.0
    for t, delta in enumerate(rise.tolist()):
        level += delta
        if level < band.minimum:
            breach += band.minimum - level
            level = band.minimum
        elif level > band.maximum:
            breach += level - band.maximum
            level = band.maximum
        levels[t] = level
    return levels, breach


def _assess(
    problem: PlanProblem, arrays: _Arrays, on: Bools, previous: Bools | None, churn: float
) -> _Assessment:
    hours = arrays.hours
    power = np.array([s.load.power_kw for s in arrays.specs]).reshape(-1, 1)
    load_kw = (power * on).sum(axis=0) if len(arrays.specs) else np.zeros(arrays.slots)
    net = arrays.base_net + load_kw
    export = problem.export_allowed
    imported = _imported(net, export)
    baseline = _imported(arrays.base_net, export)
    over = np.maximum(net - arrays.limit, 0.0)
    cost = float((arrays.price * (imported - baseline)).sum() * hours)
    objective = float((arrays.weight * (imported - baseline)).sum() * hours)
    objective += float(over.sum() * hours * problem.over_limit_vnd_per_kwh)
    if problem.capacity_vnd_per_kw > 0:
        peak = max(float(imported.max()), problem.peak_so_far_kw)
        objective += problem.capacity_vnd_per_kw * (peak - problem.peak_so_far_kw)
    shortfall: dict[str, float] = {}
    breach: dict[str, float] = {}
    for row, spec in enumerate(arrays.specs):
        load, ran = spec.load, on[row]
        if spec.is_batch:
            got = spec.energy_kwh if ran.any() else 0.0
        else:
            got = load.power_kw * hours * float(ran.sum())
        missing = max(0.0, spec.energy_kwh - got)
        if missing > 1e-6:
            shortfall[load.name] = missing
            objective += missing * spec.shortfall_price
        if load.band is not None:
            _, clipped = _band_levels(spec, ran, hours)
            breach[load.name] = clipped
            objective += clipped / load.band.gain_per_kwh * problem.band_breach_vnd_per_kwh
    if previous is not None:
        moved = np.abs(on.astype(np.int64) - previous.astype(np.int64))
        objective += float((power * moved).sum() * hours * churn)
    return _Assessment(objective, cost, shortfall, float(over.sum() * hours), breach)


def assess(problem: PlanProblem, running: Mapping[str, Sequence[bool]]) -> Plan:
    """`running` as a Plan with its cost and breaches, e.g. to compare an operator's own
    schedule with the planner's; status "rules", solve_s 0."""
    arrays = _arrays(problem)
    on = _matrix(problem, running)
    assessment = _assess(problem, arrays, on, None, 0)
    return _plan(
        problem, arrays, on=on, status="rules", gap=None, started=0.0, assessment=assessment
    )


def _matrix(problem: PlanProblem, running: Mapping[str, Sequence[bool]]) -> Bools:
    slots = len(problem.price_vnd_per_kwh)
    on = np.zeros((len(problem.loads), slots), dtype=np.bool_)
    for row, load in enumerate(problem.loads):
        given = np.asarray(running.get(load.name, ()), dtype=np.bool_)[:slots]
        on[row, : len(given)] = given
    return on


def _plan(
    problem: PlanProblem,
    arrays: _Arrays,
    *,
    on: Bools,
    status: Status,
    gap: float | None,
    started: float,
    assessment: _Assessment,
) -> Plan:
    return Plan(
        running={
            load.name: tuple(bool(x) for x in on[row]) for row, load in enumerate(problem.loads)
        },
        status=status,
        objective_vnd=assessment.objective_vnd,
        cost_vnd=assessment.cost_vnd,
        gap=gap,
        solve_s=time.perf_counter() - started if started else 0.0,
        shortfall_kwh=assessment.shortfall_kwh,
        over_limit_kwh=assessment.over_limit_kwh,
        band_breach=assessment.band_breach,
    )


# --- Validity: what any plan must respect, whoever made it --------------------------------


def _runs(on: Bools) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    padded = np.concatenate(([False], on, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _spec_violations(spec: _Spec, on: Bools) -> list[str]:
    name = spec.load.name
    found = []
    if (on & ~spec.allowed).any():
        found.append(f"{name}: runs outside [earliest, deadline)")
    if (spec.locked & ~on).any():
        found.append(f"{name}: a locked run is interrupted")
    runs = _runs(on)
    if spec.is_batch and spec.batch:
        if len(runs) > 1 or (runs and runs[0][1] != spec.batch):
            found.append(f"{name}: a batch must be one run of {spec.batch} slots, got {runs}")
    elif not spec.is_batch:
        for start, length in runs:
            done = length + (spec.load.running_for if start == 0 and spec.was_on else 0)
            if done < spec.run:
                found.append(f"{name}: a run of {length} at slot {start} < {spec.run}")
    return found


def violations(problem: PlanProblem, plan: Plan) -> list[str]:
    """What in `plan` breaks a hard rule of `problem`: a run outside a load's window, a locked
    run cut, a batch split or resized, a run shorter than its minimum. Soft limits (site
    limit, deadlines' energy, bands) are costs, reported in the plan, not here."""
    if set(plan.running) != {load.name for load in problem.loads}:
        return [f"plan has loads {sorted(plan.running)}, problem has others"]
    on = _matrix(problem, plan.running)
    found = []
    for row, spec in enumerate(_arrays(problem).specs):
        found += _spec_violations(spec, on[row])
    return found


# --- The MILP -----------------------------------------------------------------------------


HIGHS_OPTIONS: dict[str, bool | int | float | str] = {
    "output_flag": False,
    # One thread: the gateway has 2 cores and the agent's polling and publishing share them;
    # HiGHS's parallel MIP tasks would only steal from the live loop.
    "threads": 1,
    # The objective counts from the base load's cost and can be near 0 (everything in PV
    # surplus); 100 VND absolute is then close enough.
    "mip_abs_gap": 100.0,
    "random_seed": 0,
    # Penalties reach 1e7-1e8 VND per column (a whole batch missed); HiGHS warns the model
    # is badly scaled and, scaled, reaches its first node in two thirds of the time.
    "user_objective_scale": -6,
}
"""Options for every solve; time_limit and mip_rel_gap come from `solve`'s arguments."""


class _Model:
    """Columns, rows and triplets gathered in numpy chunks, passed to HiGHS in one call:
    building with highspy's per-variable objects costs more than the solve at this size."""

    def __init__(self) -> None:
        self.n_cols = 0
        self.n_rows = 0
        self._lower: list[Floats] = []
        self._upper: list[Floats] = []
        self._integer: list[NDArray[np.int32]] = []
        self._row_lower: list[Floats] = []
        self._row_upper: list[Floats] = []
        self._cost_at: list[Ints] = []
        self._cost: list[Floats] = []
        self._r: list[Ints] = []
        self._c: list[Ints] = []
        self._v: list[Floats] = []
        self.offset = 0.0

    def cols(
        self, n: int, lower: float | NDArray[Any], upper: float | NDArray[Any], *, integer: bool
    ) -> Ints:
        first = self.n_cols
        self.n_cols += n
        self._lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)))
        self._upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)))
        self._integer.append(np.full(n, 1 if integer else 0, dtype=np.int32))
        return np.arange(first, first + n, dtype=np.int64)

    def rows(self, n: int, lower: float | NDArray[Any], upper: float | NDArray[Any]) -> Ints:
        first = self.n_rows
        self.n_rows += n
        self._row_lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)))
        self._row_upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)))
        return np.arange(first, first + n, dtype=np.int64)

    def cost(self, cols: Ints, value: float | NDArray[Any]) -> None:
        self._cost_at.append(cols)
        self._cost.append(np.broadcast_to(np.asarray(value, dtype=np.float64), cols.shape))

    def entries(self, rows: Ints, cols: Ints, values: float | NDArray[Any]) -> None:
        self._r.append(rows)
        self._c.append(cols)
        self._v.append(np.broadcast_to(np.asarray(values, dtype=np.float64), rows.shape))

    @property
    def nonzeros(self) -> int:
        return sum(len(chunk) for chunk in self._r)

    def highs(self, time_limit_s: float, mip_gap: float) -> highspy.Highs:
        n = self.n_cols
        cost = np.bincount(
            np.concatenate(self._cost_at), np.concatenate(self._cost), minlength=n
        ).astype(np.float64)
        rows = np.concatenate(self._r)
        cols = np.concatenate(self._c)
        values = np.concatenate(self._v)
        order = np.argsort(cols, kind="stable")
        start = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.bincount(cols, minlength=n), out=start[1:])
        solver = highspy.Highs()  # type: ignore[no-untyped-call]
        options = {
            **HIGHS_OPTIONS,
            "time_limit": max(time_limit_s, 1e-6),
            "mip_rel_gap": mip_gap,
        }
        for option, value in options.items():
            solver.setOptionValue(option, value)
        solver.passModel(
            n,
            self.n_rows,
            len(values),
            int(highspy.MatrixFormat.kColwise),
            int(highspy.ObjSense.kMinimize),
            self.offset,
            cost,
            np.concatenate(self._lower),
            np.concatenate(self._upper),
            np.concatenate(self._row_lower),
            np.concatenate(self._row_upper),
            start,
            rows[order].astype(np.int32),
            values[order],
            np.concatenate(self._integer),
        )
        return solver


@dataclass(slots=True)
class _OnTerms:
    """A load's running state per slot as a sum of binary columns, on[slot] = Σ col, and its
    start indicators (a batch's y, an interruptible load's u) by slot."""

    slot: Ints
    col: Ints
    start_slot: Ints = field(default_factory=lambda: np.zeros(0, np.int64))
    start_col: Ints = field(default_factory=lambda: np.zeros(0, np.int64))
    batch: bool = False

    def hint(self, on: Bools, was_on: bool) -> tuple[Ints, Floats]:
        """The columns' values for running states `on`: a MIP start."""
        starts = on & ~np.concatenate(([was_on], on[:-1]))
        if self.batch:
            return self.start_col, starts[self.start_slot].astype(np.float64)
        cols = np.concatenate((self.col, self.start_col))
        values = np.concatenate((on[self.slot], starts[self.start_slot]))
        return cols, values.astype(np.float64)


def _build(
    problem: PlanProblem,
    arrays: _Arrays,
    previous: Bools | None,
    churn: float,
    *,
    free: Bools | None = None,
    fixed: Bools | None = None,
) -> tuple[_Model, list[_OnTerms]]:
    """The MILP; with `free`, only those loads get columns, the others are constants at
    their `fixed` running states (a neighbourhood of a plan)."""
    model = _Model()
    slots, hours = arrays.slots, arrays.hours
    # A batch under way is a constant; an interruptible run's locked slots are columns fixed
    # at 1 (they count towards its energy and its minimum run).
    fixed_kw = np.zeros(slots)
    if free is None:
        free = np.ones(len(arrays.specs), dtype=np.bool_)
    for row, spec in enumerate(arrays.specs):
        if not free[row]:
            assert fixed is not None
            fixed_kw += spec.load.power_kw * fixed[row]
        elif spec.is_batch:
            fixed_kw += spec.load.power_kw * spec.locked

    site = _site_rows(model, problem, arrays, fixed_kw)
    terms: list[_OnTerms] = []
    for row, spec in enumerate(arrays.specs):
        load = spec.load
        kwh = load.power_kw * hours
        if not free[row]:
            on = _OnTerms(np.zeros(0, np.int64), np.zeros(0, np.int64))
        elif spec.is_batch:
            on = _batch_terms(model, spec)
        else:
            on = _run_terms(model, spec, hours)
        terms.append(on)
        if not len(on.col):
            continue
        model.entries(site[on.slot], on.col, load.power_kw)
        # Tie-break towards earlier slots; churn: |on − before| is linear in on for a fixed
        # `before`, so moving a run costs churn per kWh moved at no extra column.
        extra = _TIE_VND_PER_KWH * on.slot * kwh
        if previous is not None:
            was = previous[row]
            extra = extra + np.where(was[on.slot], -churn, churn) * kwh
            free = np.zeros(arrays.slots, dtype=np.bool_)
            free[on.slot] = True
            fixed = spec.locked & ~free
            constant = was[free].sum() + (was[~free] != fixed[~free]).sum()
            model.offset += churn * kwh * float(constant)
        model.cost(on.col, extra)
        if load.band is not None:
            _band_rows(model, spec, on, hours, problem.band_breach_vnd_per_kwh)
    return model, terms


def _site_rows(model: _Model, problem: PlanProblem, arrays: _Arrays, fixed_kw: Floats) -> Ints:
    """Σ P·on − imported − over ≤ pv − base − fixed loads, one row per slot. `imported` is
    capped at the limit; what goes above it is `over`, paid at the price plus the breach
    penalty; a capacity charge adds the peak of imported + over."""
    slots, hours, inf = arrays.slots, arrays.hours, highspy.kHighsInf
    limit = arrays.limit if problem.export_allowed else np.maximum(arrays.limit, 0.0)
    imported = model.cols(slots, -inf if problem.export_allowed else 0.0, limit, integer=False)
    over = model.cols(slots, 0.0, inf, integer=False)
    model.cost(imported, arrays.weight * hours)
    model.cost(over, (arrays.weight + problem.over_limit_vnd_per_kwh) * hours)
    site = model.rows(slots, -inf, -(arrays.base_net + fixed_kw))
    model.entries(site, imported, -1.0)
    model.entries(site, over, -1.0)
    # The objective counts from the base load's cost, so the MIP gap is relative to what the
    # plan decides, not to the site's whole bill.
    baseline = _imported(arrays.base_net, problem.export_allowed)
    model.offset -= float((arrays.weight * baseline).sum()) * hours
    if problem.capacity_vnd_per_kw > 0:
        peak = model.cols(1, problem.peak_so_far_kw, inf, integer=False)
        model.cost(peak, problem.capacity_vnd_per_kw)
        model.offset -= problem.capacity_vnd_per_kw * problem.peak_so_far_kw
        rows = model.rows(slots, -inf, 0.0)
        model.entries(rows, imported, 1.0)
        model.entries(rows, over, 1.0)
        model.entries(rows, np.full(slots, peak[0]), -1.0)
    return site


def _batch_terms(model: _Model, spec: _Spec) -> _OnTerms:
    """Start-time formulation: y[s] = "the batch starts at s"; on[t] = Σ y over the B starts
    that cover t. One row per batch, and the LP relaxation is already nearly integral."""
    length = spec.batch
    window = np.flatnonzero(spec.allowed)
    if not length or len(window) == 0:
        return _OnTerms(np.zeros(0, np.int64), np.zeros(0, np.int64))
    first, end = int(window[0]), int(window[-1]) + 1
    starts = np.arange(first, max(first, end - length + 1))
    missed = model.cols(1, 0.0, 1.0, integer=False)
    model.cost(missed, spec.energy_kwh * spec.shortfall_price)
    one = model.rows(1, 1.0, 1.0)
    model.entries(one, missed, 1.0)
    if not len(starts):
        return _OnTerms(np.zeros(0, np.int64), np.zeros(0, np.int64))
    y = model.cols(len(starts), 0.0, 1.0, integer=True)
    model.entries(np.full(len(y), one[0]), y, 1.0)
    slot = (starts[:, None] + np.arange(length)).ravel()
    return _OnTerms(slot, np.repeat(y, length), starts, y, batch=True)


def _run_terms(model: _Model, spec: _Spec, hours: float) -> _OnTerms:
    """One binary per allowed slot; with a minimum run k > 1, start indicators u with
    u[t] ≥ on[t] − on[t−1] and Σ u over (t−k, t] ≤ on[t] (the turn-on inequalities, the
    convex hull of minimum-up-time runs), far tighter than pairwise on/off implications."""
    inf = highspy.kHighsInf
    slots = len(spec.allowed)
    load = spec.load
    where = np.flatnonzero(spec.allowed)
    on = model.cols(len(where), spec.locked[where].astype(np.float64), 1.0, integer=True)
    if spec.energy_kwh > 0:
        short = model.cols(1, 0.0, spec.energy_kwh, integer=False)
        model.cost(short, spec.shortfall_price)
        row = model.rows(1, spec.energy_kwh, inf)
        model.entries(np.full(len(on), row[0]), on, load.power_kw * hours)
        model.entries(row, short, 1.0)
    if spec.run > 1 and len(where):
        col_on = np.full(slots + 1, -1, dtype=np.int64)  # index -1 -> slot before 0
        col_on[where] = on
        at = np.flatnonzero(spec.startable)
        col_u = np.full(slots, -1, dtype=np.int64)
        u = col_u[at] = model.cols(len(at), 0.0, 1.0, integer=True)
        # u[t] ≥ on[t] − on[t−1], for every free slot (a locked one needs no start).
        free = where[~spec.locked[where] & ~((where == 0) & spec.was_on)]
        rows = model.rows(len(free), -inf, 0.0)
        model.entries(rows, col_on[free], 1.0)
        before = col_on[free - 1]
        has = (before >= 0) & (free > 0)
        model.entries(rows[has], before[has], -1.0)
        has = col_u[free] >= 0
        model.entries(rows[has], col_u[free][has], -1.0)
        # Σ u[s], s in (t−k, t] ≤ on[t].
        window = where[:, None] - np.arange(spec.run)
        cols = np.where(window >= 0, col_u[np.maximum(window, 0)], -1)
        keep = (cols >= 0).any(axis=1)
        rows = model.rows(int(keep.sum()), -inf, 0.0)
        cols = cols[keep]
        mask = cols >= 0
        model.entries(np.repeat(rows, mask.sum(axis=1)), cols[mask], 1.0)
        model.entries(rows, col_on[where[keep]], -1.0)
        return _OnTerms(where.astype(np.int64), on, at.astype(np.int64), u)
    return _OnTerms(where.astype(np.int64), on)


def _band_rows(model: _Model, spec: _Spec, on: _OnTerms, hours: float, price: float) -> None:
    """The level as a count: after slot t it is level + g·n[t] − draw[..t], n[t] the slots
    run so far (g = gain·P·h), so the band is an integer interval for n[t] and its bounds
    can be rounded inwards. n[t] = n[t−1] + on[t] + fill[t] − spill[t]; on a cumulative sum
    with interval bounds the LP relaxation is integral (an interval matrix), which the
    level-in-units form is not: that one left HiGHS seconds of cuts for a single store.
    fill and spill are the soft part, priced per slot of running they stand for."""
    band = spec.load.band
    assert band is not None
    slots = len(spec.allowed)
    inf = highspy.kHighsInf
    lower, upper = _band_counts(band, spec.load.power_kw * hours)
    count = model.cols(slots, lower, upper, integer=False)
    fill = model.cols(slots, 0.0, inf, integer=False)
    spill = model.cols(slots, 0.0, inf, integer=False)
    model.cost(fill, price * spec.load.power_kw * hours)
    model.cost(spill, price * spec.load.power_kw * hours)
    fixed = (spec.locked if spec.is_batch else np.zeros(slots, dtype=np.bool_)).astype(float)
    rows = model.rows(slots, fixed, fixed)
    model.entries(rows, count, 1.0)
    model.entries(rows[1:], count[:-1], -1.0)
    model.entries(rows, fill, -1.0)
    model.entries(rows, spill, 1.0)
    model.entries(rows[on.slot], on.col, -1.0)


@dataclass(slots=True)
class _Outcome:
    on: Bools
    optimal: bool
    bound: float | None  # HiGHS's dual bound, for the whole model only


def _milp(
    problem: PlanProblem,
    arrays: _Arrays,
    *,
    previous: Bools | None,
    churn: float,
    hint: Bools,
    time_limit_s: float,
    mip_gap: float,
    free: Bools | None = None,
) -> _Outcome | None:
    """HiGHS's best plan within `time_limit_s`, or None. `hint` (a valid plan) is the MIP
    start, so HiGHS has an incumbent from the first node. With `free`, only those loads
    move; the others stay as in `hint`."""
    model, terms = _build(problem, arrays, previous, churn, free=free, fixed=hint)
    # HiGHS checks its time limit only once its MIP search runs, not while it presolves and
    # completes the start; on a 100-load model that setup took 0.3-0.5 s on 2 shared cores.
    # So the limit is what is left after an estimate of the setup, and no time, no solve.
    setup_s = _SETUP_S_PER_NONZERO * model.nonzeros
    if time_limit_s < 1.5 * setup_s:
        return None
    solver = model.highs(time_limit_s - setup_s, mip_gap)
    cols, values = [], []
    for row, (spec, term) in enumerate(zip(arrays.specs, terms, strict=True)):
        col, value = term.hint(hint[row], spec.was_on)
        cols.append(col)
        values.append(value)
    if cols:
        index = np.concatenate(cols).astype(np.int32)
        solver.setSolution(len(index), index, np.concatenate(values))
    solver.run()
    info = solver.getInfo()
    if info.primal_solution_status != int(highspy.SolutionStatus.kSolutionStatusFeasible):
        return None
    solution = np.asarray(solver.getSolution().col_value)
    on = hint.copy()
    for row, (spec, term) in enumerate(zip(arrays.specs, terms, strict=True)):
        if free is None or free[row]:
            level = np.bincount(term.slot, solution[term.col], minlength=arrays.slots)
            on[row] = (level > 0.5) | spec.locked
    optimal = solver.getModelStatus() == highspy.HighsModelStatus.kOptimal
    bound = float(info.mip_dual_bound) if free is None else None
    return _Outcome(on, optimal, bound)


def _valid(arrays: _Arrays, on: Bools) -> bool:
    return not any(_spec_violations(spec, on[row]) for row, spec in enumerate(arrays.specs))


_SETUP_S_PER_NONZERO = 6e-6

# Loads per neighbourhood: few enough that HiGHS usually solves one in tens of milliseconds.
_NEIGHBOURHOOD = 4


def _search(
    problem: PlanProblem,
    arrays: _Arrays,
    *,
    previous: Bools | None,
    churn: float,
    start: Bools,
    deadline: float,
    mip_gap: float,
) -> tuple[Bools, Status | None, float | None]:
    """The whole MILP for part of the budget (it may prove optimality, and its bound gives
    the gap), then large-neighbourhood search for the rest: re-solve a few loads at a time
    with the others fixed, keeping every improvement. On a site of 50+ loads with stores and
    minimum runs, HiGHS alone spends seconds in root cuts and sub-MIPs before it improves on
    the greedy start; a neighbourhood of a few loads takes it milliseconds."""

    def score(on: Bools) -> float:
        return _assess(problem, arrays, on, previous, churn).objective_vnd

    best, best_score = start, score(start)
    status: Status | None = None  # None: HiGHS had no solution in time
    bound = None
    budget = deadline - time.perf_counter()
    whole = _milp(
        problem,
        arrays,
        previous=previous,
        churn=churn,
        hint=best,
        time_limit_s=budget * 0.6 if len(arrays.specs) > _NEIGHBOURHOOD else budget,
        mip_gap=mip_gap,
    )
    if whole is not None and _valid(arrays, whole.on):
        bound, status = whole.bound, "feasible"
        if (value := score(whole.on)) <= best_score:
            best, best_score = whole.on, value
        if whole.optimal:
            return best, "optimal", _gap(best_score, bound)
    loads = len(arrays.specs)
    order = np.random.default_rng(0).permutation(loads)
    stale = 0  # neighbourhoods since the last improvement
    at = 0
    while loads > _NEIGHBOURHOOD and stale < loads:
        remaining = deadline - time.perf_counter()
        if remaining < 0.03:
            break
        free = np.zeros(loads, dtype=np.bool_)
        free[np.take(order, range(at, at + _NEIGHBOURHOOD), mode="wrap")] = True
        at += _NEIGHBOURHOOD
        found = _milp(
            problem,
            arrays,
            previous=previous,
            churn=churn,
            hint=best,
            time_limit_s=remaining,
            mip_gap=mip_gap / 10,
            free=free,
        )
        stale += _NEIGHBOURHOOD
        if found is not None and _valid(arrays, found.on):
            status = "feasible"
            value = score(found.on)
            if value < best_score - 1.0:
                best, best_score, stale = found.on, value, 0
    gap = _gap(best_score, bound)
    if gap is not None and gap <= mip_gap:  # what HiGHS itself calls optimal
        status = "optimal"
    return best, status, gap


def _gap(value: float, bound: float | None) -> float | None:
    if bound is None or not math.isfinite(bound):
        return None  # HiGHS had no bound yet
    return max(0.0, value - bound) / max(abs(value), 1.0)


# --- The rules: a greedy that always answers ----------------------------------------------


class _Greedy:
    """Places loads one at a time, most important first, each at its own optimum given
    what is already placed (priced at the marginal cost, so PV surplus and the limit's
    headroom count). A second pass re-placing each load against all the others gained
    nothing on the benchmark's days and doubled the time; the MILP's neighbourhoods do
    that job better."""

    def __init__(self, problem: PlanProblem, arrays: _Arrays) -> None:
        self.problem = problem
        self.arrays = arrays
        self.net = arrays.base_net.copy()
        for spec in arrays.specs:
            self.net += spec.load.power_kw * spec.locked

    def marginal(self, power_kw: float) -> Floats:
        """VND to add `power_kw` in each slot, over-limit penalty and tie-break included."""
        a, p = self.arrays, self.problem
        after = self.net + power_kw
        energy = _imported(after, p.export_allowed) - _imported(self.net, p.export_allowed)
        over = np.maximum(after - a.limit, 0) - np.maximum(self.net - a.limit, 0)
        tie = _TIE_VND_PER_KWH * power_kw * np.arange(a.slots)
        return (a.weight * energy + p.over_limit_vnd_per_kwh * over + tie) * a.hours

    def place(self, spec: _Spec) -> Bools:
        cost = self.marginal(spec.load.power_kw)
        on = self._batch(spec, cost) if spec.is_batch else self._runs(spec, cost)
        self.net += spec.load.power_kw * (on & ~spec.locked)
        return on

    def _batch(self, spec: _Spec, cost: Floats) -> Bools:
        on = spec.locked.copy()
        cost = np.where(spec.allowed, cost, np.inf)
        if not spec.batch or len(cost) < spec.batch:
            return on
        sums = np.convolve(cost, np.ones(spec.batch))[spec.batch - 1 : len(cost)]
        if np.isfinite(sums).any():
            start = int(np.argmin(sums))
            on[start : start + spec.batch] = True
        return on

    def _runs(self, spec: _Spec, cost: Floats) -> Bools:
        """The cheapest running states for an interruptible or band load alone, by dynamic
        programming over (slots run so far, run state): off, on for j < k slots, or on for
        at least the minimum run k. Exact for one load; a millisecond or two."""
        slots, k, load = self.arrays.slots, spec.run, spec.load
        kwh = load.power_kw * self.arrays.hours
        need = spec.energy_kwh / kwh
        # More than the need plus a minimum run's overshoot never pays, bands aside.
        top = slots if load.band is not None else min(slots, math.ceil(need - 1e-9) + k)
        counts = np.arange(top + 1, dtype=np.float64)
        if load.band is not None:
            lower, upper = _band_counts(load.band, kwh)
            breach = self.problem.band_breach_vnd_per_kwh * kwh
        value = np.full((top + 1, k + 1), np.inf)
        value[0, min(load.running_for, k) if spec.was_on else 0] = 0.0
        # Backtracking: did "off" come from a finished run, did "on for ≥ k" come from k−1
        # (or, with k = 1, from a start)?
        off_after_run = np.zeros((slots, top + 1), dtype=np.bool_)
        long_from_short = np.zeros((slots, top + 1), dtype=np.bool_)
        start_ok = spec.startable
        for t in range(slots):
            new = np.full_like(value, np.inf)
            if not spec.locked[t]:
                np.minimum(value[:, 0], value[:, k], out=new[:, 0])
                off_after_run[t] = value[:, k] < value[:, 0]
            if spec.allowed[t]:
                step = value[:-1] + cost[t]
                short = step[:, 0] if start_ok[t] else np.full(top, np.inf)
                if k > 1:
                    new[1:, 1] = short
                    new[1:, 2:k] = step[:, 1 : k - 1]
                    short = step[:, k - 1]
                np.minimum(short, step[:, k], out=new[1:, k])
                long_from_short[t, 1:] = short < step[:, k]
            if load.band is not None:
                outside = np.maximum(lower[t] - counts, 0) + np.maximum(counts - upper[t], 0)
                new += (breach * outside)[:, None]
            value = new
        if need > 0:
            value += (np.maximum(need - counts, 0) * kwh * spec.shortfall_price)[:, None]
        count, state = (int(x) for x in np.unravel_index(int(np.argmin(value)), value.shape))
        on = np.zeros(slots, dtype=np.bool_)
        for t in range(slots - 1, -1, -1):
            if state == 0:
                state = k if off_after_run[t, count] else 0
                continue
            on[t] = True
            if state == k:
                state = (k - 1 if k > 1 else 0) if long_from_short[t, count] else k
            else:
                state -= 1
            count -= 1
        return on


def _band_counts(band: StorageBand, kwh_per_slot: float) -> tuple[Floats, Floats]:
    """The band as bounds on the slots run so far, after each slot, rounded inwards: the
    level after slot t is level + g·n − draw[..t], g the rise per slot run."""
    gain = band.gain_per_kwh * kwh_per_slot
    drawn = np.cumsum(np.asarray(band.draw_per_slot, dtype=np.float64))
    lower = np.ceil((band.minimum - band.level + drawn) / gain - 1e-9)
    upper = np.floor((band.maximum - band.level + drawn) / gain + 1e-9)
    return np.minimum(lower, upper), upper  # a band narrower than a slot's rise: below it


def _rules(problem: PlanProblem, arrays: _Arrays) -> Bools:
    greedy = _Greedy(problem, arrays)
    on = np.zeros((len(arrays.specs), arrays.slots), dtype=np.bool_)

    def urgency(row: int) -> tuple[int, int]:
        spec = arrays.specs[row]
        end = np.flatnonzero(spec.allowed)
        return (-spec.load.priority, int(end[-1]) if len(end) else 0)

    for row in sorted(range(len(arrays.specs)), key=urgency):
        on[row] = greedy.place(arrays.specs[row])
    return on


def rules(problem: PlanProblem) -> Plan:
    """The greedy plan alone: the fallback, and the baseline the MILP is measured against."""
    started = time.perf_counter()
    arrays = _arrays(problem)
    on = _rules(problem, arrays)
    assessment = _assess(problem, arrays, on, None, 0)
    return _plan(
        problem, arrays, on=on, status="rules", gap=None, started=started, assessment=assessment
    )


# --- Entry points -------------------------------------------------------------------------


def shifted(plan: Plan, shift: int, slots: int) -> dict[str, tuple[bool, ...]]:
    """`plan`'s running states `shift` slots later, cut or padded (off) to `slots`."""
    moved = {}
    for name, on in plan.running.items():
        kept = tuple(on[shift : shift + slots])
        moved[name] = kept + (False,) * (slots - len(kept))
    return moved


def solve(
    problem: PlanProblem,
    *,
    time_limit_s: float = 0.8,
    mip_gap: float = 0.005,
    previous: Plan | None = None,
    churn_vnd_per_kwh: float = 50.0,
) -> Plan:
    """The cheapest plan HiGHS finds within `time_limit_s` (build included) and `mip_gap`.

    `previous` is the plan being followed, already aligned to this problem's slots (see
    `shifted`); each kWh moved away from it costs `churn_vnd_per_kwh`, so a small forecast
    change does not reshuffle the day. The better of `previous` (if it still respects every
    hard rule) and the greedy rules is HiGHS's start, so what HiGHS returns is never worse;
    without a HiGHS solution in time, that start is the answer ("last-plan" or "rules").
    Deterministic for a given problem unless the time limit cuts HiGHS short.
    """
    started = time.perf_counter()
    arrays = _arrays(problem)
    before = None if previous is None else _matrix(problem, previous.running)
    keep = previous is not None and before is not None and not violations(problem, previous)
    greedy = _rules(problem, arrays)
    fallback: tuple[Bools, Status] = (greedy, "rules")
    if keep and before is not None:
        kept = _assess(problem, arrays, before, before, churn_vnd_per_kwh).objective_vnd
        if kept <= _assess(problem, arrays, greedy, before, churn_vnd_per_kwh).objective_vnd:
            fallback = (before, "last-plan")
    gap = None
    on, status = fallback
    # HiGHS gets what is left of the budget, less a margin for the answer's assessment.
    deadline = started + time_limit_s * 0.95 - 0.005
    if deadline - time.perf_counter() > 0.005:
        on, found, gap = _search(
            problem,
            arrays,
            previous=before,
            churn=churn_vnd_per_kwh,
            start=fallback[0],
            deadline=deadline,
            mip_gap=mip_gap,
        )
        status = found or status
    assessment = _assess(problem, arrays, on, before, churn_vnd_per_kwh)
    return _plan(
        problem, arrays, on=on, status=status, gap=gap, started=started, assessment=assessment
    )


class Planner:
    """Rolling horizon: re-plans each slot with started runs locked (the caller sets
    `running_for`) and changes against the plan being followed penalised; never "no plan".

    The plan it keeps is the last one it returned, whatever made it: that is the one the
    site follows, so it is both the churn reference and the fallback.
    """

    def __init__(
        self,
        *,
        time_limit_s: float = 0.8,
        mip_gap: float = 0.005,
        churn_vnd_per_kwh: float = 50.0,
    ) -> None:
        self.time_limit_s = time_limit_s
        self.mip_gap = mip_gap
        self.churn_vnd_per_kwh = churn_vnd_per_kwh
        self.last: Plan | None = None

    def replan(self, problem: PlanProblem, *, shift: int) -> Plan:
        """`shift` is the number of slots elapsed since the previous plan was made."""
        previous = None
        if self.last is not None:
            running = shifted(self.last, shift, len(problem.price_vnd_per_kwh))
            previous = dataclasses.replace(self.last, running=running)
        plan = solve(
            problem,
            time_limit_s=self.time_limit_s,
            mip_gap=self.mip_gap,
            previous=previous,
            churn_vnd_per_kwh=self.churn_vnd_per_kwh,
        )
        self.last = plan
        return plan
