"""The load planner's rules: a greedy that always answers, the MILP's start and its fallback."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from edge_agent.control.plan_problem import (
    TIE_VND_PER_KWH,
    Arrays,
    Bools,
    Floats,
    Plan,
    PlanProblem,
    Spec,
    band_counts,
    evaluate,
    imported_kw,
    make_plan,
    to_arrays,
)

__all__ = ["greedy_plan", "rules"]


class _Greedy:
    """Places loads one at a time, most important first, each at its own optimum given
    what is already placed (priced at the marginal cost, so PV surplus and the limit's
    headroom count). A second pass re-placing each load against all the others gained
    nothing on the benchmark's days and doubled the time; the MILP's neighbourhoods do
    that job better."""

    def __init__(self, problem: PlanProblem, arrays: Arrays) -> None:
        self.problem = problem
        self.arrays = arrays
        self.net = arrays.base_net.copy()
        for spec in arrays.specs:
            self.net += spec.load.power_kw * spec.locked

    def marginal(self, power_kw: float) -> Floats:
        """VND to add `power_kw` in each slot, over-limit penalty and tie-break included."""
        a, p = self.arrays, self.problem
        after = self.net + power_kw
        energy = imported_kw(after, p.export_allowed) - imported_kw(self.net, p.export_allowed)
        over = np.maximum(after - a.limit, 0) - np.maximum(self.net - a.limit, 0)
        tie = TIE_VND_PER_KWH * power_kw * np.arange(a.slots)
        return (a.weight * energy + p.over_limit_vnd_per_kwh * over + tie) * a.hours

    def place(self, spec: Spec) -> Bools:
        cost = self.marginal(spec.load.power_kw)
        on = self._batch(spec, cost) if spec.is_batch else self._runs(spec, cost)
        self.net += spec.load.power_kw * (on & ~spec.locked)
        return on

    def _batch(self, spec: Spec, cost: Floats) -> Bools:
        on = spec.locked.copy()
        cost = np.where(spec.allowed, cost, np.inf)
        if not spec.batch or len(cost) < spec.batch:
            return on
        sums = np.convolve(cost, np.ones(spec.batch))[spec.batch - 1 : len(cost)]
        if np.isfinite(sums).any():
            start = int(np.argmin(sums))
            on[start : start + spec.batch] = True
        return on

    def _runs(self, spec: Spec, cost: Floats) -> Bools:
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
            lower, upper = band_counts(load.band, kwh)
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


def greedy_plan(problem: PlanProblem, arrays: Arrays) -> Bools:
    greedy = _Greedy(problem, arrays)
    on = np.zeros((len(arrays.specs), arrays.slots), dtype=np.bool_)
    rows = {spec.load.name: row for row, spec in enumerate(arrays.specs)}

    def urgency(row: int) -> tuple[int, int]:
        spec = arrays.specs[row]
        end = np.flatnonzero(spec.allowed)
        return (-spec.load.priority, int(end[-1]) if len(end) else 0)

    # A sequencer's batches in their order: each placed after the one before it has ended.
    waiting = sorted(range(len(arrays.specs)), key=urgency)
    placed: set[int] = set()
    while waiting:
        row = next(
            (r for r in waiting if rows.get(arrays.specs[r].load.after or "", -1) in placed | {-1}),
            waiting[0],
        )
        waiting.remove(row)
        spec = arrays.specs[row]
        before = rows.get(spec.load.after or "")
        if before is not None and on[before].any():
            after_end = np.arange(arrays.slots) > np.flatnonzero(on[before])[-1]
            spec = replace(spec, allowed=spec.allowed & after_end)
        on[row] = greedy.place(spec)
        placed.add(row)
    return on


def rules(problem: PlanProblem) -> Plan:
    """The greedy plan alone: the fallback, and the baseline the MILP is measured against."""
    started = time.perf_counter()
    arrays = to_arrays(problem)
    on = greedy_plan(problem, arrays)
    assessment = evaluate(problem, arrays, on, None, 0)
    return make_plan(
        problem, arrays, on=on, status="rules", gap=None, started=started, assessment=assessment
    )
