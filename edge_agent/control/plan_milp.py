"""The load planner's MILP on HiGHS: built in bulk as numpy arrays, solved within a budget,
then improved by neighbourhoods of a few loads."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray

from edge_agent.control.plan_problem import (
    TIE_VND_PER_KWH,
    Arrays,
    Bools,
    Floats,
    Ints,
    PlanProblem,
    Spec,
    Status,
    band_counts,
    evaluate,
    imported_kw,
    order_violations,
    spec_violations,
)

__all__ = ["HIGHS_OPTIONS", "new_highs", "search", "solve_milp"]


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


_BANNER_SHOWN = False


def new_highs() -> highspy.Highs:
    """A HiGHS instance. The first in a process prints a banner on the C stdout whatever the
    options (it would land in the middle of a CLI's table), so that one is made with file
    descriptor 1 pointed at /dev/null for the instant it takes."""
    global _BANNER_SHOWN  # noqa: PLW0603 - once per process, as HiGHS prints it
    if _BANNER_SHOWN:
        return highspy.Highs()  # type: ignore[no-untyped-call]
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            solver = highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_SHOWN = True
    return solver


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
        solver = new_highs()
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
    missed: int = -1
    """A batch's "not placed" column, -1 for none."""

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
    arrays: Arrays,
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
        extra = TIE_VND_PER_KWH * on.slot * kwh
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
    _order_rows(model, arrays, terms, free)
    if problem.cost_cap_vnd is not None:
        _cap_row(model, problem, arrays, terms, free=free, fixed=fixed)
    return model, terms


def _cap_row(
    model: _Model,
    problem: PlanProblem,
    arrays: Arrays,
    terms: list[_OnTerms],
    *,
    free: Bools,
    fixed: Bools | None,
) -> None:
    """Σ price·P·h·on − dearer ≤ cap − what the constants cost (a running batch, the loads
    a neighbourhood keeps fixed); `dearer` is paid at `over_cap_vnd_per_vnd`."""
    assert problem.cost_cap_vnd is not None
    hours = arrays.hours
    constant = 0.0
    for row, spec in enumerate(arrays.specs):
        if not free[row]:
            assert fixed is not None
            constant += float((arrays.price * fixed[row]).sum()) * spec.load.power_kw * hours
        elif spec.is_batch:
            constant += float((arrays.price * spec.locked).sum()) * spec.load.power_kw * hours
    cap = model.rows(1, -highspy.kHighsInf, problem.cost_cap_vnd - constant)
    dearer = model.cols(1, 0.0, highspy.kHighsInf, integer=False)
    model.cost(dearer, problem.over_cap_vnd_per_vnd)
    model.entries(cap, dearer, -1.0)
    for row, term in enumerate(terms):
        if len(term.col):
            # A batch's start column stands for every slot it covers: one entry, summed.
            kw = arrays.specs[row].load.power_kw
            cols, where = np.unique(term.col, return_inverse=True)
            coefficient = np.bincount(where, arrays.price[term.slot] * kw * hours)
            model.entries(np.full(len(cols), cap[0]), cols, coefficient)


def _order_rows(model: _Model, arrays: Arrays, terms: list[_OnTerms], free: Bools) -> None:
    """One sequencer's batches in their order: "k started by t" ≤ "j ended by t" (or j not
    placed at all), on cumulative start columns C[t] = C[t−1] + y[t], three entries a row.
    A pair of which one is fixed (a neighbourhood) is kept apart by `search`, which frees
    a sequencer's batches together."""
    rows = {spec.load.name: row for row, spec in enumerate(arrays.specs)}
    slots, inf = arrays.slots, highspy.kHighsInf
    cumulative: dict[int, Ints] = {}

    def started_by(row: int) -> Ints:
        if row not in cumulative:
            term = terms[row]
            c = model.cols(slots, 0.0, 1.0, integer=False)
            link = model.rows(slots, 0.0, 0.0)
            model.entries(link, c, 1.0)
            model.entries(link[1:], c[:-1], -1.0)
            model.entries(link[term.start_slot], term.start_col, -1.0)
            cumulative[row] = c
        return cumulative[row]

    for k, spec in enumerate(arrays.specs):
        j = rows.get(spec.load.after) if spec.load.after is not None else None
        if j is None or not (free[j] and free[k]):
            continue
        if not (terms[k].batch and len(terms[k].start_col)):
            continue  # a batch that cannot start needs no order
        if not len(terms[j].start_col) and terms[j].missed < 0:
            continue  # nothing of j to wait for
        length = arrays.specs[j].batch
        ck = started_by(k)
        t = np.arange(slots)
        rows_k = model.rows(slots, -inf, 0.0)
        model.entries(rows_k, ck, 1.0)
        if len(terms[j].start_col):
            cj = started_by(j)
            ended = t - length >= 0
            model.entries(rows_k[ended], cj[(t - length)[ended]], -1.0)
        if terms[j].missed >= 0:
            model.entries(rows_k, np.full(slots, terms[j].missed), -1.0)


def _site_rows(model: _Model, problem: PlanProblem, arrays: Arrays, fixed_kw: Floats) -> Ints:
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
    baseline = imported_kw(arrays.base_net, problem.export_allowed)
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


def _batch_terms(model: _Model, spec: Spec) -> _OnTerms:
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
        return _OnTerms(
            np.zeros(0, np.int64), np.zeros(0, np.int64), batch=True, missed=int(missed[0])
        )
    y = model.cols(len(starts), 0.0, 1.0, integer=True)
    model.entries(np.full(len(y), one[0]), y, 1.0)
    slot = (starts[:, None] + np.arange(length)).ravel()
    return _OnTerms(slot, np.repeat(y, length), starts, y, batch=True, missed=int(missed[0]))


def _run_terms(model: _Model, spec: Spec, hours: float) -> _OnTerms:
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


def _band_rows(model: _Model, spec: Spec, on: _OnTerms, hours: float, price: float) -> None:
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
    lower, upper = band_counts(band, spec.load.power_kw * hours)
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


def solve_milp(
    problem: PlanProblem,
    arrays: Arrays,
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


def _valid(arrays: Arrays, on: Bools) -> bool:
    if any(spec_violations(spec, on[row]) for row, spec in enumerate(arrays.specs)):
        return False
    return not order_violations(arrays, on)


def _with_sequencers(arrays: Arrays, free: Bools) -> Bools:
    """`free` grown to whole sequencer queues: a batch moves only with its neighbours."""
    rows = {spec.load.name: row for row, spec in enumerate(arrays.specs)}
    grown = free.copy()
    changed = True
    while changed:
        changed = False
        for k, spec in enumerate(arrays.specs):
            j = rows.get(spec.load.after) if spec.load.after is not None else None
            if j is not None and grown[j] != grown[k]:
                grown[j] = grown[k] = True
                changed = True
    return grown


_SETUP_S_PER_NONZERO = 6e-6

# Loads per neighbourhood: few enough that HiGHS usually solves one in tens of milliseconds.
_NEIGHBOURHOOD = 4


def search(
    problem: PlanProblem,
    arrays: Arrays,
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
        return evaluate(problem, arrays, on, previous, churn).objective_vnd

    best, best_score = start, score(start)
    status: Status | None = None  # None: HiGHS had no solution in time
    bound = None
    budget = deadline - time.perf_counter()
    whole = solve_milp(
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
        free = _with_sequencers(arrays, free)
        at += _NEIGHBOURHOOD
        found = solve_milp(
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
    """Relative gap to HiGHS's bound; None without a bound worth the name: stopped before
    its root LP, HiGHS reports its presolve's bound, often below −100%."""
    if bound is None or not math.isfinite(bound):
        return None
    gap = max(0.0, value - bound) / max(abs(value), 1.0)
    return gap if gap <= 1.0 else None
