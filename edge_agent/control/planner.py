"""The load planner: deferrable loads over the day's slots at least cost, solved on HiGHS.

Layer 2 of the optimiser. Each slot it schedules the loads that may wait (batches,
interruptible loads with minimum runs, loads that fill a tank or a cold store) against the
time-of-use price, the PV forecast and the site's import limit; the demand limiter (layer 1)
then keeps the live demand inside the window's limit whatever the plan said.

Pure: the caller passes time as slot indices and gets a `Plan`; nothing is read or written.
The only clock read is a monotonic stopwatch that bounds the solve. The greedy rules
(`plan_rules`) always answer first; the better of their plan and the last plan, shifted, is
the MILP's start (`plan_milp`), and HiGHS's best within `time_limit_s` is the answer, never
worse than that start. "No plan" is never an answer. The rules themselves are not
time-limited: 0.02-0.2 s for 20-100 loads.

Soft constraints carry explicit prices (`PlanProblem.*_vnd_per_kwh`) so the MILP is never
infeasible and every breach is reported: energy above the site limit (`over_limit_kwh`),
energy a load could not get before its deadline (`shortfall_kwh`) and a storage level forced
outside its band (`band_breach`).
"""

from __future__ import annotations

import dataclasses
import time

from edge_agent.control.plan_milp import HIGHS_OPTIONS, search
from edge_agent.control.plan_problem import (
    Arrays,
    Bools,
    DeferrableLoad,
    Plan,
    PlanProblem,
    Status,
    StorageBand,
    as_released,
    as_released_cost,
    assess,
    evaluate,
    make_plan,
    matrix_of,
    order_violations,
    spec_violations,
    to_arrays,
    violations,
)
from edge_agent.control.plan_rules import greedy_plan, rules

__all__ = [
    "HIGHS_OPTIONS",
    "DeferrableLoad",
    "Plan",
    "PlanProblem",
    "Planner",
    "StorageBand",
    "as_released_cost",
    "assess",
    "rules",
    "shifted",
    "solve",
    "violations",
]


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
    arrays = to_arrays(problem)
    names = [load.name for load in problem.loads]
    if previous is not None and all(name in previous.running for name in names):
        # Loads that finished since are dropped; the rest of the plan still stands.
        running = {name: previous.running[name] for name in names}
        previous = dataclasses.replace(previous, running=running)
    before = None if previous is None else matrix_of(problem, previous.running)
    keep = previous is not None and before is not None and not violations(problem, previous)
    greedy = greedy_plan(problem, arrays)
    fallback: tuple[Bools, Status] = (greedy, "rules")
    if problem.cost_cap_vnd is not None:
        # The devices left to themselves are a plan too: the answer is never worse.
        released = as_released(problem, arrays)
        score = evaluate(problem, arrays, released, before, churn_vnd_per_kwh).objective_vnd
        greedy_score = evaluate(problem, arrays, greedy, before, churn_vnd_per_kwh).objective_vnd
        if _valid_plan(arrays, released) and score < greedy_score:
            fallback = (released, "rules")
    if keep and before is not None:
        kept = evaluate(problem, arrays, before, before, churn_vnd_per_kwh).objective_vnd
        if kept <= evaluate(problem, arrays, greedy, before, churn_vnd_per_kwh).objective_vnd:
            fallback = (before, "last-plan")
    gap = None
    on, status = fallback
    # HiGHS gets what is left of the budget, less a margin for the answer's assessment.
    deadline = started + time_limit_s * 0.95 - 0.005
    if deadline - time.perf_counter() > 0.005:
        on, found, gap = search(
            problem,
            arrays,
            previous=before,
            churn=churn_vnd_per_kwh,
            start=fallback[0],
            deadline=deadline,
            mip_gap=mip_gap,
        )
        status = found or status
    assessment = evaluate(problem, arrays, on, before, churn_vnd_per_kwh)
    return make_plan(
        problem, arrays, on=on, status=status, gap=gap, started=started, assessment=assessment
    )


def _valid_plan(arrays: Arrays, on: Bools) -> bool:
    if any(spec_violations(spec, on[row]) for row, spec in enumerate(arrays.specs)):
        return False
    return not order_violations(arrays, on)


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
