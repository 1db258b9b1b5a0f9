"""A random factory's day under every kind of control, scored and judged.

What a plant engineer asks of the agent before keeping it: never worse than no control.
`factory_day(seed)` draws the factory (simulators.generator), calibrates its limit on its
uncontrolled day, runs the day in-process under a classic limiter and under the agent
(`run_direct`: the same agent code, no sockets), and scores the three days beside the
perfect-hindsight bound (`score_runs`). `failures` says, of one factory, each way the
agent was worse than no control or the bound was beaten; `judge` is the same for a
process pool (what travels is plain figures). The bench (bench/random_factories.py) and
the test (tests/test_random_factories.py) both judge with these, so that they agree.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from .generator import POLL_INTERVAL_S, calibrate, draw
from .park import Scenario, score_runs
from .park_run import Run, run_direct
from .scoring import check_bound

__all__ = [
    "HARD",
    "TOLERANCE",
    "FactoryDay",
    "Tolerance",
    "factory_day",
    "failures",
    "judge",
    "row",
    "table",
    "totals",
]

HARD = ("deadlines_missed", "process_breaches", "min_on_off_breaches", "charging_shortfall_kwh")
"""The hard violations: batches late, process bands left (bar·s, K·s, %·s summed), minimum
on or off times broken, charging not delivered by departure (kWh)."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much worse than no control still counts as no worse: measurement grain, not
    slack for the control. A violation counts beyond what no control had of it, since a
    day's physics may breach a band on its own."""

    peak_kw: float = 0.5
    """On the peak 15-min demand, kW."""
    over_kw_min: float = 7.5
    """On the time over the limit: half a kW over one 15-min window, kW·min."""
    cost_vnd: float = 0.0
    hard: dict[str, float] = field(
        default_factory=lambda: {
            "deadlines_missed": 0.0,
            "process_breaches": 1.0,
            "min_on_off_breaches": 0.0,
            "charging_shortfall_kwh": 0.1,
        }
    )


TOLERANCE = Tolerance()


@dataclass
class FactoryDay:
    """One random factory's day: the scenario, the three runs (agents and all, when run in
    this process) and the score of the factory."""

    seed: int
    scenario: Scenario
    limit_share: float
    runs: dict[str, Run]
    score: dict[str, Any]
    wall_s: float


async def factory_day(seed: int, *, poll_interval_s: float = POLL_INTERVAL_S) -> FactoryDay:
    """Draw, calibrate, run and score the factory of `seed`. The calibration's uncontrolled
    day is the no-control run: it does not depend on the limit or on the requests."""
    started = time.monotonic()
    drawn = draw(seed, poll_interval_s=poll_interval_s)
    scenario, none = await calibrate(drawn)
    runs = {
        "none": none,
        "limiter": await run_direct(scenario, "limiter"),
        "agent": await run_direct(scenario, "agent"),
    }
    name = scenario.factories[0].name
    score = score_runs(scenario, runs)[name]
    return FactoryDay(seed, scenario, drawn.limit_share, runs, score, time.monotonic() - started)


def _hard(figures: dict[str, Any]) -> dict[str, float]:
    return {
        "deadlines_missed": float(figures.get("deadlines_missed", 0)),
        "process_breaches": round(sum(figures.get("process_band", {}).values()), 1),
        "min_on_off_breaches": float(figures.get("min_on_off_breaches", 0)),
        "charging_shortfall_kwh": float(figures.get("charging_shortfall_kwh", 0.0)),
    }


def row(day: FactoryDay) -> dict[str, Any]:
    """The factory's figures as plain data: one row of the table, one entry of the JSON."""
    factory = day.scenario.factories[0]
    score = day.score
    bound = score.get("hindsight", {})
    none_cost = score["none"]["cost_vnd"]
    bound_saved = none_cost - bound["cost_vnd"] if bound else 0
    models: dict[str, int] = {}
    for machine in factory.machines:
        models[machine.model] = models.get(machine.model, 0) + 1
    result: dict[str, Any] = {
        "seed": day.seed,
        "factory": factory.name,
        "machines": models,
        "limit_kw": factory.limit_kw,
        "limit_share": day.limit_share,
        "events": [_event(e) for e in day.scenario.events],
        "peak_kw": {m: score[m]["peak_window_demand_kw"] for m in ("none", "limiter", "agent")},
        "over_kw_min": {m: score[m]["over_limit_kw_min"] for m in ("none", "limiter", "agent")},
        "cost_vnd": {m: score[m]["cost_vnd"] for m in ("none", "limiter", "agent")},
        "saved_pct": {m: score[m].get("cost_saved_pct") for m in ("limiter", "agent")},
        "share_of_bound": {m: score[m].get("share_of_bound") for m in ("limiter", "agent")},
        "hard": {m: _hard(score[m]) for m in ("none", "limiter", "agent")},
        "bound": {
            "cost_vnd": bound.get("cost_vnd"),
            "peak_kw": bound.get("peak_window_demand_kw"),
            "saved_pct": round(100 * bound_saved / none_cost, 2) if bound and none_cost else None,
            "cost_lower_vnd": bound.get("cost_lower_vnd"),
            "status": bound.get("status"),
            "shortfall_kwh": bound.get("shortfall_kwh"),
            "problems": check_bound(score),
        },
        "wall_s": {
            "total": round(day.wall_s, 1),
            **{m: round(run.wall_s, 1) for m, run in day.runs.items()},
        },
    }
    result["failures"] = failures(result)
    return result


def _event(event: Any) -> str:
    kind = event.kind
    if kind == "demand_response":
        return (
            f"demand response {event.start:%H:%M} {event.duration_min:g} min {event.limit_kw:g} kW"
        )
    if kind == "device_failure":
        return f"{event.device} down {event.at:%H:%M} {event.duration_min:g} min"
    return f"broker down {event.at:%H:%M} {event.duration_min:g} min"


def failures(figures: dict[str, Any], tolerance: Tolerance = TOLERANCE) -> list[str]:
    """Each way the agent was worse than no control, or a run beat the bound (by more than
    `check_bound` allows, simulators/scoring.py); none: pass."""
    found = []
    peak, over, cost = figures["peak_kw"], figures["over_kw_min"], figures["cost_vnd"]
    if peak["agent"] > peak["none"] + tolerance.peak_kw:
        found.append(f"peak {peak['agent']:,.1f} kW > {peak['none']:,.1f} without control")
    if over["agent"] > over["none"] + tolerance.over_kw_min:
        found.append(f"over the limit {over['agent']:,.0f} kW·min > {over['none']:,.0f}")
    if cost["agent"] > cost["none"] + tolerance.cost_vnd:
        found.append(f"cost {cost['agent'] - cost['none']:+,.0f} VND")
    hard, none = figures["hard"]["agent"], figures["hard"]["none"]
    for key in HARD:
        if hard[key] > none[key] + tolerance.hard[key]:
            found.append(f"{key} {hard[key]:g} (no control {none[key]:g})")
    if figures["bound"]["cost_vnd"] is None:
        found.append(f"no bound ({figures['bound']['status']})")
    found += figures["bound"]["problems"]
    return found


def judge(seed: int, poll_interval_s: float = POLL_INTERVAL_S) -> dict[str, Any]:
    """`factory_day` and its `row`, for a process pool: what returns is plain data."""
    return row(asyncio.run(factory_day(seed, poll_interval_s=poll_interval_s)))


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Over the factories: how many pass; where the bound saves more than 0.5 % (a share of
    a saving near zero says nothing), the agent's mean share of the bound's saving and the
    fraction of factories in which it reaches half of it; and the agent's saving over all
    factories as a share of the bound's."""
    worth = [r for r in rows if (r["bound"]["saved_pct"] or 0.0) > 0.5]
    half = [r for r in worth if (r["share_of_bound"]["agent"] or 0.0) >= 0.5]
    bound_saved = sum(r["cost_vnd"]["none"] - (r["bound"]["cost_vnd"] or 0) for r in rows)
    return {
        "factories": len(rows),
        "passed": sum(not r["failures"] for r in rows),
        "bound_saves_over_half_pct": len(worth),
        "mean_share_of_bound": _mean(r["share_of_bound"]["agent"] for r in worth),
        "limiter_mean_share_of_bound": _mean(r["share_of_bound"]["limiter"] for r in worth),
        "reaching_half_of_bound": round(len(half) / len(worth), 3) if worth else None,
        "share_of_total_bound_saving": round(
            sum(r["cost_vnd"]["none"] - r["cost_vnd"]["agent"] for r in rows) / bound_saved, 3
        )
        if bound_saved > 0
        else None,
        "wall_s_per_factory": round(statistics.fmean(r["wall_s"]["total"] for r in rows), 1)
        if rows
        else None,
    }


def _mean(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.fmean(known), 3) if known else None


_COLUMNS = (
    "seed",
    "factory",
    "lim%",
    "peak none",
    "agent",
    "bound",
    "over none",
    "agent",
    "cost none M",
    "agent",
    "bound",
    "saved ag%",
    "bd%",
    "of bound",
    "hard dl/pb/mo/cs",
    "wall s",
    "verdict",
)


def table(rows: list[dict[str, Any]]) -> str:
    """One line a factory (kW, kW·min, million VND, %), its failures below it."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for r in rows:
        peak, over, cost, bound = r["peak_kw"], r["over_kw_min"], r["cost_vnd"], r["bound"]
        hard = r["hard"]["agent"]
        cells = [
            str(r["seed"]),
            r["factory"],
            f"{100 * r['limit_share']:.0f}",
            f"{peak['none']:,.0f}",
            f"{peak['agent']:,.0f}",
            "-" if bound["peak_kw"] is None else f"{bound['peak_kw']:,.0f}",
            f"{over['none']:,.0f}",
            f"{over['agent']:,.0f}",
            f"{cost['none'] / 1e6:.3f}",
            f"{cost['agent'] / 1e6:.3f}",
            "-" if bound["cost_vnd"] is None else f"{bound['cost_vnd'] / 1e6:.3f}",
            pct(r["saved_pct"]["agent"]),
            pct(bound["saved_pct"]),
            share(r["share_of_bound"]["agent"]),
            "/".join(f"{hard[k]:g}" for k in HARD),
            f"{r['wall_s']['total']:.0f}",
            "FAIL" if r["failures"] else "PASS",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for r in rows:
        if r["failures"]:
            lines.append(f"seed {r['seed']} {r['factory']}: " + "; ".join(r["failures"]))
    return "\n".join(lines)
