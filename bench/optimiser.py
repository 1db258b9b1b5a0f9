"""Optimiser: the load planner's plan time and cost on a factory day (96 slots of 15 min),
beside two baselines from the same run: the greedy rules (what the MILP saves) and, for the
smallest size, a naive on/off MILP (why the start-time formulation matters).

    .venv/bin/python bench/optimiser.py --loads 20,50,100 --instances 20
    .venv/bin/python bench/optimiser.py --quick

Sections run from `main()`; each is a function taking the parsed arguments, so a later
section (e.g. the demand limiter's step) is one more function and one more flag.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import highspy

from edge_agent.control.planner import (
    DeferrableLoad,
    PlanProblem,
    StorageBand,
    assess,
    rules,
    solve,
)

SLOTS = 96
SLOT_S = 900
HOURS = SLOT_S / 3600
LIMIT_SHARE = 0.2  # headroom above the base load, as a share of the deferrable loads' power
OFF_PEAK, NORMAL, PEAK = 1190.0, 1833.0, 3398.0  # EVN, 22-110 kV, VND/kWh


def evn_price(slot: int) -> float:
    """EVN weekday bands (Circular 16/2014): peak 09:30-11:30 and 17:00-20:00, off-peak
    22:00-04:00, normal otherwise."""
    if 38 <= slot < 46 or 68 <= slot < 80:
        return PEAK
    if slot < 16 or slot >= 88:
        return OFF_PEAK
    return NORMAL


def instance(loads: int, seed: int) -> PlanProblem:
    """A factory's day: batches of 2-16 slots, interruptible loads with minimum runs, a few
    tanks or cold stores, PV, and on some days a demand-response event at the evening peak."""
    rng = random.Random(seed)
    made: list[DeferrableLoad] = []
    for i in range(loads):
        kind = rng.random()
        power = round(rng.uniform(15, 150), 1)
        if kind < 0.5:
            length = rng.randint(2, 16)
            earliest = rng.randint(0, 48)
            deadline = min(SLOTS, earliest + length + rng.randint(8, 64))
            made.append(
                DeferrableLoad(
                    f"batch-{i}",
                    power,
                    batch_slots=length,
                    earliest=earliest,
                    deadline=deadline,
                    priority=rng.randint(0, 100),
                )
            )
        elif kind < 0.85:
            need = rng.randint(4, 24)
            earliest = rng.randint(0, 32)
            deadline = min(SLOTS, earliest + need + rng.randint(12, 72))
            made.append(
                DeferrableLoad(
                    f"run-{i}",
                    power,
                    energy_kwh=need * power * HOURS,
                    earliest=earliest,
                    deadline=deadline,
                    min_run_slots=rng.randint(1, 6),
                    priority=rng.randint(0, 100),
                )
            )
        else:
            duty = rng.uniform(0.25, 0.6)
            gain = 1.0 / (power * HOURS)  # one level unit per slot run
            width = rng.randint(4, 12)
            draw = tuple(duty * rng.uniform(0.8, 1.2) for _ in range(SLOTS))
            made.append(
                DeferrableLoad(
                    f"store-{i}",
                    power,
                    min_run_slots=rng.randint(1, 3),
                    band=StorageBand(
                        level=width / 2, minimum=0.0, maximum=float(width),
                        gain_per_kwh=gain, draw_per_slot=draw,
                    ),
                )
            )  # fmt: skip
    total_kw = sum(load.power_kw for load in made)
    base_kw = 0.8 * total_kw
    pv_peak = rng.uniform(0.2, 0.6) * total_kw
    base = tuple(
        base_kw * (0.7 + 0.3 * (24 <= t < 88)) * rng.uniform(0.95, 1.05) for t in range(SLOTS)
    )
    pv = tuple(max(0.0, pv_peak * (1 - ((t - 48) / 24) ** 2)) for t in range(SLOTS))
    limit = base_kw + LIMIT_SHARE * total_kw
    event = rng.random() < 0.4
    return PlanProblem(
        slot_s=SLOT_S,
        price_vnd_per_kwh=tuple(evn_price(t) for t in range(SLOTS)),
        base_kw=base,
        pv_kw=pv,
        limit_kw=tuple(limit * (0.8 if event and 68 <= t < 76 else 1.0) for t in range(SLOTS)),
        loads=tuple(made),
    )


def naive_running(  # noqa: PLR0915 - one model, built in one place
    problem: PlanProblem, time_limit_s: float
) -> tuple[dict[str, list[bool]], str]:
    """The textbook on/off model: a binary per load and slot, a start binary, and minimum
    runs as pairwise implications on[t+j] ≥ start[t]. Same objective and soft limits as the
    planner's; its LP relaxation is weak, so branch and bound has far more to do."""
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", time_limit_s)
    h.setOptionValue("mip_rel_gap", 0.005)
    n = SLOTS
    price = problem.price_vnd_per_kwh
    imported = [h.addVariable(lb=0, ub=problem.limit_kw[t]) for t in range(n)]
    over = [h.addVariable(lb=0) for t in range(n)]
    objective: Any = sum(
        price[t] * HOURS * imported[t]
        + (price[t] + problem.over_limit_vnd_per_kwh) * HOURS * over[t]
        for t in range(n)
    )
    site: list[Any] = [0.0] * n
    on_vars = {}
    for load in problem.loads:
        end = load.deadline or n
        on: list[Any] = [h.addBinary() if load.earliest <= t < end else None for t in range(n)]
        start: list[Any] = [h.addBinary() if on[t] is not None else None for t in range(n)]
        on_vars[load.name] = on
        shortfall = problem.shortfall_vnd_per_kwh * (1 + load.priority / 1000)
        k = load.batch_slots or load.min_run_slots
        for t in range(n):
            if on[t] is None:
                continue
            site[t] = site[t] + load.power_kw * on[t]
            previous = on[t - 1] if t > 0 else None
            h.addConstr(start[t] >= on[t] - previous if previous is not None else start[t] >= on[t])
            for j in range(k):
                if t + j < n and on[t + j] is not None:
                    h.addConstr(on[t + j] >= start[t])
                else:
                    h.addConstr(start[t] <= 0)
                    break
        starts = [s for s in start if s is not None]
        ons = [o for o in on if o is not None]
        if load.batch_slots is not None:
            missed = h.addVariable(lb=0, ub=1)
            h.addConstr(sum(starts) <= 1)
            h.addConstr(sum(ons) + load.batch_slots * missed == load.batch_slots)
            objective += missed * load.power_kw * load.batch_slots * HOURS * shortfall
        elif load.energy_kwh > 0:
            short = h.addVariable(lb=0, ub=load.energy_kwh)
            h.addConstr(load.power_kw * HOURS * sum(ons) + short >= load.energy_kwh)
            objective += short * shortfall
        if load.band is not None:
            band = load.band
            level = band.level
            penalty = problem.band_breach_vnd_per_kwh / band.gain_per_kwh
            for t in range(n):
                fill, spill = h.addVariable(lb=0), h.addVariable(lb=0)
                nxt = h.addVariable(lb=band.minimum, ub=band.maximum)
                rise = band.gain_per_kwh * load.power_kw * HOURS
                term = rise * on[t] if on[t] is not None else 0.0
                h.addConstr(nxt == level + term - band.draw_per_slot[t] + fill - spill)
                objective += penalty * (fill + spill)
                level = nxt
    for t in range(n):
        h.addConstr(site[t] - imported[t] - over[t] <= problem.pv_kw[t] - problem.base_kw[t])
    h.minimize(objective)
    solved = h.getInfo().primal_solution_status == 2
    running = {
        name: [solved and v is not None and h.val(v) > 0.5 for v in on]
        for name, on in on_vars.items()
    }
    return running, h.modelStatusToString(h.getModelStatus())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench_planner(args: argparse.Namespace) -> None:
    print(
        f"load planner: {SLOTS} slots of {SLOT_S // 60} min, {args.instances} seeded instances "
        f"per size, time limit {args.time_limit} s, gap 0.5 %, 1 thread"
    )
    header = (
        f"{'loads':>5} {'MILP p50 s':>10} {'p95 s':>7} {'max s':>7} {'status':>22} "
        f"{'gap p95':>8} {'bound':>5} {'rules s':>8} {'MILP cost':>12} {'rules cost':>12} "
        f"{'saved':>6}"
    )
    print(header)
    for size in args.loads:
        times, gaps, rule_times = [], [], []
        cost = rule_cost = 0.0
        statuses: Counter[str] = Counter()
        for seed in range(args.instances):
            problem = instance(size, seed)
            plan = solve(problem, time_limit_s=args.time_limit)
            baseline = rules(problem)
            times.append(plan.solve_s)
            rule_times.append(baseline.solve_s)
            if plan.gap is not None:
                gaps.append(plan.gap)
            statuses[plan.status] += 1
            cost += plan.objective_vnd
            rule_cost += baseline.objective_vnd
        status = " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
        gap_p95 = f"{percentile(gaps, 0.95):.2%}" if gaps else "-"
        print(
            f"{size:>5} {statistics.median(times):>10.3f} {percentile(times, 0.95):>7.3f} "
            f"{max(times):>7.3f} {status:>22} {gap_p95:>8} {len(gaps):>5} "
            f"{statistics.median(rule_times):>8.3f} {cost / args.instances:>12,.0f} "
            f"{rule_cost / args.instances:>12,.0f} {1 - cost / rule_cost:>6.1%}"
        )
    print("cost: the objective in VND above the base load's own cost (energy, penalties),")
    print("mean per instance; saved: against the rules, same instances; bound: instances")
    print("where HiGHS had a lower bound in time, which the gap is measured against.")


def bench_naive(args: argparse.Namespace) -> None:
    size = min(args.loads)
    count = min(args.instances, args.naive_instances)
    print(f"\nformulation, {size} loads, {count} instances, naive time limit {args.naive_limit} s")
    print(f"{'model':<34} {'p50 s':>7} {'max s':>7} {'statuses':>26} {'mean objective':>15}")
    rows: list[tuple[str, list[float], Counter[str], float]] = []
    runners: list[tuple[str, Callable[[PlanProblem, float], tuple[float, str, float]]]] = [
        ("start-time (planner)", _timed_planner),
        ("naive on/off + pairwise min runs", _timed_naive),
    ]
    for label, runner in runners:
        times: list[float] = []
        statuses: Counter[str] = Counter()
        objective = 0.0
        for seed in range(count):
            seconds, status, value = runner(instance(size, seed), args.naive_limit)
            times.append(seconds)
            statuses[status] += 1
            objective += value
        rows.append((label, times, statuses, objective / count))
    for label, times, statuses, objective in rows:
        status = " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
        print(
            f"{label:<34} {statistics.median(times):>7.2f} {max(times):>7.2f} {status:>26} "
            f"{objective:>15,.0f}"
        )


def _timed_planner(problem: PlanProblem, limit_s: float) -> tuple[float, str, float]:
    plan = solve(problem, time_limit_s=limit_s)
    return plan.solve_s, plan.status, plan.objective_vnd


def _timed_naive(problem: PlanProblem, limit_s: float) -> tuple[float, str, float]:
    start = time.perf_counter()
    running, status = naive_running(problem, limit_s)
    seconds = time.perf_counter() - start
    return seconds, status.lower().replace(" ", "-"), assess(problem, running).objective_vnd


def bench_limiter(args: argparse.Namespace) -> None:
    """The demand limiter's step for `--limiter-loads` loads in varied states, beside the
    floor of any limiter in the same run: sorting the loads by priority once per cycle."""
    from datetime import UTC, datetime, timedelta

    from edge_agent.control.config import ControlConfig
    from edge_agent.control.limiter import DemandLimiter, LimiterInputs
    from edge_agent.control.loads import LoadState
    from edge_agent.control.window import Projection

    n, cycles = args.limiter_loads, args.limiter_cycles
    rng = random.Random(5)
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    config = ControlConfig.model_validate(
        {
            "meter": "incomer",
            "limit_kw": 10_000,
            "loads": [
                {
                    "name": f"load-{i}",
                    "device": f"d{i}",
                    "rated_kw": rng.uniform(5, 80),
                    "priority": rng.randint(0, 100),
                    "sheddable": rng.random() < 0.8,
                    **(
                        {"band": {"point": "p", "minimum": 6.0, "margin": 0.2}}
                        if rng.random() < 0.3
                        else {}
                    ),
                }
                for i in range(n)
            ],
        }
    )
    states = []
    for load in config.loads:
        state = LoadState(load)
        state.on = rng.random() < 0.8
        state.held_by = None if state.on else "limiter"
        state.since = now - timedelta(seconds=rng.uniform(0, 3600))
        state.power_kw = rng.uniform(0, load.rated_kw)
        state.band_value = rng.uniform(5.8, 7.5) if load.band else None
        states.append(state)
    limiter = DemandLimiter(config)
    times, floor, actions = [], [], 0
    for cycle in range(cycles):
        power = rng.uniform(6_000, 14_000)
        projection = Projection(now, rng.uniform(0, 3000), rng.uniform(30, 900), power, power)
        inputs = LimiterInputs(now + timedelta(seconds=cycle), projection, 10_000, 1833)
        started = time.perf_counter()
        actions += len(limiter.step(inputs, states))
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        sorted(states, key=lambda s: (s.config.priority, s.name))
        floor.append(time.perf_counter() - started)
    print(f"\n## Demand limiter step, {n} loads, {cycles} cycles")
    print("| | p50 | p95 | max |\n|---|---|---|---|")
    for label, values in (("limiter step", times), ("floor: sort by priority", floor)):
        print(
            f"| {label} | {percentile(values, 0.5) * 1e3:.2f} ms | "
            f"{percentile(values, 0.95) * 1e3:.2f} ms | {max(values) * 1e3:.2f} ms |"
        )
    print(f"actions decided: {actions} ({actions / cycles:.1f} a cycle)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", default="20,50,100", help="sizes, comma separated")
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--time-limit", type=float, default=0.8, help="planner budget, s")
    parser.add_argument("--naive-limit", type=float, default=30.0)
    parser.add_argument("--naive-instances", type=int, default=5)
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--quick", action="store_true", help="3 instances, naive 5 s")
    parser.add_argument("--limiter-loads", type=int, default=500)
    parser.add_argument("--limiter-cycles", type=int, default=2000)
    parser.add_argument("--only-limiter", action="store_true")
    args = parser.parse_args()
    args.loads = [int(x) for x in args.loads.split(",")]
    if args.quick:
        args.instances, args.naive_limit, args.naive_instances = 3, 5.0, 2
    sections: list[Callable[[argparse.Namespace], None]] = [bench_planner]
    if not args.no_naive:
        sections.append(bench_naive)
    sections.append(bench_limiter)
    if args.only_limiter:
        sections = [bench_limiter]
    for section in sections:
        section(args)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
