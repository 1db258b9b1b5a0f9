"""The load planner's problem and plan, the problem as arrays, and the one yardstick every
plan is measured with, whoever made it (the MILP, the rules, an operator).

Shared by `plan_milp` and `plan_rules`; the public names are re-exported by `planner`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "TIE_VND_PER_KWH",
    "Arrays",
    "Assessment",
    "Bools",
    "DeferrableLoad",
    "Floats",
    "Ints",
    "Plan",
    "PlanProblem",
    "Spec",
    "Status",
    "StorageBand",
    "as_released",
    "as_released_cost",
    "assess",
    "band_counts",
    "deferrable_cost",
    "evaluate",
    "imported_kw",
    "make_plan",
    "matrix_of",
    "order_violations",
    "spec_violations",
    "to_arrays",
    "violations",
]

Status = Literal["optimal", "feasible", "last-plan", "rules"]
Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]

# A slot's tie-break, VND per kWh per slot index: far below any price step, it only picks the
# earliest of equally priced slots so plans are stable and reproducible.
TIE_VND_PER_KWH = 1e-3


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
    after: str | None = None
    """A batch that may start only once the batch `after` has ended: the queue of one
    sequencer, which runs its batches one at a time, in this order."""


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
    cost_cap_vnd: float | None = None
    """What the deferrable loads' energy may cost at most (`deferrable_cost`), usually what
    it costs run as released (`as_released`): the plan is then never dearer than the
    devices left to themselves, and holds the limit only by moves that cost nothing more."""
    over_cap_vnd_per_vnd: float = 1_000.0
    """Price of each VND above `cost_cap_vnd`: above the limit's price for any move between
    tariff bands, below a missed deadline's, so the cap gives way only to a deadline."""

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
        batches = {load.name for load in self.loads if load.batch_slots is not None}
        for load in self.loads:
            _check_load(load)
            if load.after is not None and (load.batch_slots is None or load.after not in batches):
                raise ValueError(f"load {load.name!r}: `after` links two batches of the problem")


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
class Spec:
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
class Arrays:
    slots: int
    hours: float
    price: Floats
    weight: Floats  # price plus CO2 per kWh imported
    base_net: Floats  # base - pv, kW
    limit: Floats
    specs: list[Spec]


def to_arrays(problem: PlanProblem) -> Arrays:
    slots = len(problem.price_vnd_per_kwh)
    price = np.asarray(problem.price_vnd_per_kwh, dtype=np.float64)
    co2 = np.broadcast_to(np.asarray(problem.co2_kg_per_kwh, dtype=np.float64), (slots,))
    return Arrays(
        slots=slots,
        hours=problem.slot_s / 3600.0,
        price=price,
        weight=price + problem.co2_vnd_per_kg * co2,
        base_net=np.asarray(problem.base_kw, dtype=np.float64)
        - np.asarray(problem.pv_kw, dtype=np.float64),
        limit=np.asarray(problem.limit_kw, dtype=np.float64),
        specs=[spec_of(load, slots, problem) for load in problem.loads],
    )


def spec_of(load: DeferrableLoad, slots: int, problem: PlanProblem) -> Spec:
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
        return Spec(
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
    return Spec(
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
class Assessment:
    objective_vnd: float
    cost_vnd: float
    shortfall_kwh: dict[str, float]
    over_limit_kwh: float
    band_breach: dict[str, float]


def imported_kw(net_kw: Floats, export: bool) -> Floats:
    return net_kw if export else np.maximum(net_kw, 0.0)


def _band_levels(spec: Spec, on: Bools, hours: float) -> tuple[Floats, float]:
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


def evaluate(
    problem: PlanProblem, arrays: Arrays, on: Bools, previous: Bools | None, churn: float
) -> Assessment:
    hours = arrays.hours
    power = np.array([s.load.power_kw for s in arrays.specs]).reshape(-1, 1)
    load_kw = (power * on).sum(axis=0) if len(arrays.specs) else np.zeros(arrays.slots)
    net = arrays.base_net + load_kw
    export = problem.export_allowed
    imported = imported_kw(net, export)
    baseline = imported_kw(arrays.base_net, export)
    over = np.maximum(net - arrays.limit, 0.0)
    cost = float((arrays.price * (imported - baseline)).sum() * hours)
    objective = float((arrays.weight * (imported - baseline)).sum() * hours)
    objective += float(over.sum() * hours * problem.over_limit_vnd_per_kwh)
    if problem.cost_cap_vnd is not None:
        dearer = deferrable_cost(problem, arrays, on) - problem.cost_cap_vnd
        objective += max(0.0, dearer) * problem.over_cap_vnd_per_vnd
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
    return Assessment(objective, cost, shortfall, float(over.sum() * hours), breach)


def deferrable_cost(problem: PlanProblem, arrays: Arrays, on: Bools) -> float:
    """The deferrable loads' energy at each slot's price (VND), running states `on`."""
    if not len(arrays.specs):
        return 0.0
    power = np.array([s.load.power_kw for s in arrays.specs]).reshape(-1, 1)
    return float((arrays.price * (power * on).sum(axis=0)).sum() * arrays.hours)


def as_released(problem: PlanProblem, arrays: Arrays) -> Bools:
    """What the devices do left to themselves: every batch as soon as it may start (a
    sequencer's in its order, one after the other), every session charging from its first
    slot until it has its energy. The yardstick of "no worse than no control"."""
    on = np.zeros((len(arrays.specs), arrays.slots), dtype=np.bool_)
    rows = {spec.load.name: row for row, spec in enumerate(arrays.specs)}
    ends: dict[int, int] = {}
    for row, spec in enumerate(arrays.specs):
        on[row] |= spec.locked
        load = spec.load
        first = min(load.earliest, arrays.slots)
        if spec.is_batch:
            if not spec.batch:
                ends[row] = int(np.flatnonzero(spec.locked)[-1]) + 1 if spec.locked.any() else 0
                continue
            before = rows.get(load.after) if load.after is not None else None
            if before is not None:
                first = max(first, ends.get(before, 0))
            on[row, first : first + spec.batch] = True
            ends[row] = min(arrays.slots, first + spec.batch)
        else:
            slots = math.ceil(spec.energy_kwh / (load.power_kw * arrays.hours) - 1e-9)
            on[row, first : first + max(0, slots - int(spec.locked.sum()))] = True
    return on


def as_released_cost(problem: PlanProblem) -> float:
    """`deferrable_cost` of `as_released`: a plan's cost cap."""
    arrays = to_arrays(problem)
    return deferrable_cost(problem, arrays, as_released(problem, arrays))


def assess(problem: PlanProblem, running: Mapping[str, Sequence[bool]]) -> Plan:
    """`running` as a Plan with its cost and breaches, e.g. to compare an operator's own
    schedule with the planner's; status "rules", solve_s 0."""
    arrays = to_arrays(problem)
    on = matrix_of(problem, running)
    assessment = evaluate(problem, arrays, on, None, 0)
    return make_plan(
        problem, arrays, on=on, status="rules", gap=None, started=0.0, assessment=assessment
    )


def matrix_of(problem: PlanProblem, running: Mapping[str, Sequence[bool]]) -> Bools:
    slots = len(problem.price_vnd_per_kwh)
    on = np.zeros((len(problem.loads), slots), dtype=np.bool_)
    for row, load in enumerate(problem.loads):
        given = np.asarray(running.get(load.name, ()), dtype=np.bool_)[:slots]
        on[row, : len(given)] = given
    return on


def make_plan(
    problem: PlanProblem,
    arrays: Arrays,
    *,
    on: Bools,
    status: Status,
    gap: float | None,
    started: float,
    assessment: Assessment,
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


def spec_violations(spec: Spec, on: Bools) -> list[str]:
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


def order_violations(arrays: Arrays, on: Bools) -> list[str]:
    """Batches of one sequencer that overlap or run out of their order."""
    rows = {spec.load.name: row for row, spec in enumerate(arrays.specs)}
    found = []
    for row, spec in enumerate(arrays.specs):
        before = spec.load.after
        if before is None or before not in rows:
            continue
        mine, theirs = np.flatnonzero(on[row]), np.flatnonzero(on[rows[before]])
        if len(mine) and len(theirs) and mine[0] <= theirs[-1]:
            found.append(f"{spec.load.name}: starts before {before} has ended")
    return found


def violations(problem: PlanProblem, plan: Plan) -> list[str]:
    """What in `plan` breaks a hard rule of `problem`: a run outside a load's window, a locked
    run cut, a batch split or resized, a run shorter than its minimum. Soft limits (site
    limit, deadlines' energy, bands) are costs, reported in the plan, not here."""
    if set(plan.running) != {load.name for load in problem.loads}:
        return [f"plan has loads {sorted(plan.running)}, problem has others"]
    on = matrix_of(problem, plan.running)
    arrays = to_arrays(problem)
    found = []
    for row, spec in enumerate(arrays.specs):
        found += spec_violations(spec, on[row])
    return found + order_violations(arrays, on)


def band_counts(band: StorageBand, kwh_per_slot: float) -> tuple[Floats, Floats]:
    """The band as bounds on the slots run so far, after each slot, rounded inwards: the
    level after slot t is level + g·n − draw[..t], g the rise per slot run."""
    gain = band.gain_per_kwh * kwh_per_slot
    drawn = np.cumsum(np.asarray(band.draw_per_slot, dtype=np.float64))
    lower = np.ceil((band.minimum - band.level + drawn) / gain - 1e-9)
    upper = np.floor((band.maximum - band.level + drawn) / gain + 1e-9)
    return np.minimum(lower, upper), upper  # a band narrower than a slot's rise: below it
