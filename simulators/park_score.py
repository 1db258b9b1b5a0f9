"""What a simulated day of the park scored: the figures `simulate` writes to metrics.json.

Each run (the agent's, and the baselines: no control, a classic limiter) is scored on the
plant's ground truth beside the perfect-hindsight bound (simulators/scoring.py,
simulators/bound.py); a demand-response request on what was delivered against what was
asked; the forecasts on the agent's own record; and the day as the agent's summaries saw it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from edge_agent.control.config import LoadConfig
from edge_agent.energy.tariff import EmissionsConfig

from .park_run import WINDOW_S, Run
from .scenario import Scenario
from .scoring import FactoryRecord, check_bound, hindsight, score

__all__ = ["demand_response_outcomes", "forecast_errors", "park_metrics", "score_runs"]


def park_metrics(scenario: Scenario, runs: dict[str, Run]) -> dict[str, Any]:
    """The day's metrics: the agent's run (`runs["agent"]`) as its summaries measured it,
    with its transport, events and delivery; every run scored (the bound's solve times
    apart under `timing_s`) and the bound's own checks; the demand-response outcomes; the
    agent's forecast errors."""
    main = runs["agent"]
    metrics = _metrics(scenario, main.summaries)
    metrics["transport"] = main.transport
    metrics["events"] = main.events
    metrics["delivery"] = main.delivery
    metrics["score"] = score_runs(scenario, runs)
    metrics["timing_s"] = _timings(metrics["score"])
    metrics["bound_problems"] = {
        name: problems
        for name, per in metrics["score"].items()
        if name != "park" and (problems := check_bound(per))
    }
    metrics["demand_response"] = demand_response_outcomes(scenario, runs)
    metrics["forecasts"] = forecast_errors(main)
    return metrics


def forecast_errors(run: Run) -> dict[str, dict[str, Any]]:
    """Per factory whose agent plans: each forecast's error over the day (base load, PV),
    one slot ahead and over the plan's whole horizon, from the agent's own record."""
    return {
        name: dict(agent.controller.scheduler.forecasts())
        for name, agent in run.agents.items()
        if agent.controller is not None and agent.controller.scheduler.deferrable
    }


def demand_response_outcomes(scenario: Scenario, runs: dict[str, Run]) -> list[dict[str, Any]]:
    """Per demand-response event and factory: what was asked, what the agent answered, and
    what it delivered on the plant's ground truth: the average demand over the event's
    window in the agent's run against the run without control (delivered = none - agent),
    beside what the agent's own site summaries claimed. The windows are the 15-min billing
    windows the event covers, each weighted by its overlap with the event."""
    main = runs["agent"]
    outcomes = []
    for event in main.events:
        if event["kind"] != "demand_response":
            continue
        start, end = datetime.fromisoformat(event["start"]), datetime.fromisoformat(event["end"])
        for site, answer in event["responses"].items():
            demand = {
                mode: _average_kw(run.records[site], start, end) for mode, run in runs.items()
            }
            agent, none = demand.get("agent"), demand.get("none")
            delivered = None if agent is None or none is None else round(none - agent, 1)
            asked: dict[str, Any] = {
                k: event[k] for k in ("limit_kw", "reduction_kw") if k in event
            }
            outcome: dict[str, Any] = {
                "id": event["id"],
                "factory": site,
                "asked": {**asked, "start": event["start"], "end": event["end"]},
                "answer": answer,
                "ground_truth": {f"{mode}_kw": kw for mode, kw in demand.items()}
                | {
                    "delivered_kw": delivered,
                    "agent_peak_window_kw": _peak_kw(main.records[site], start, end),
                },
                "claimed": _claimed(main.site_summaries.get(site, []), event["id"]),
            }
            outcome["shortfall_kw"] = _shortfall(asked, agent, delivered)
            outcomes.append(outcome)
    return outcomes


def _overlaps(record: FactoryRecord, start: datetime, end: datetime) -> list[tuple[int, float]]:
    """(window, seconds of it inside [start, end)) for the recorded windows that overlap."""
    found = []
    for i, first in enumerate(record.window_starts):
        last = first + timedelta(seconds=WINDOW_S)
        inside = (min(end, last) - max(start, first)).total_seconds()
        if inside > 0:
            found.append((i, inside))
    return found


def _average_kw(record: FactoryRecord, start: datetime, end: datetime) -> float | None:
    overlaps = _overlaps(record, start, end)
    covered = sum(seconds for _, seconds in overlaps)
    if not covered:
        return None
    kwh = sum(record.import_kwh[i] * seconds / WINDOW_S for i, seconds in overlaps)
    return round(kwh / (covered / 3600), 1)


def _peak_kw(record: FactoryRecord, start: datetime, end: datetime) -> float | None:
    windows = [record.import_kwh[i] * 3600 / WINDOW_S for i, _ in _overlaps(record, start, end)]
    return round(max(windows), 1) if windows else None


def _shortfall(asked: dict[str, Any], agent: float | None, delivered: float | None) -> float | None:
    """How far the ground truth stayed from the request (kW; 0 when it was met)."""
    if "limit_kw" in asked:
        return None if agent is None else round(max(0.0, agent - asked["limit_kw"]), 1)
    return None if delivered is None else round(max(0.0, asked["reduction_kw"] - delivered), 1)


def _claimed(site_summaries: list[dict[str, Any]], event_id: str) -> dict[str, Any] | None:
    """The agent's last word on the event in its site summaries (baseline, highest
    projection and delivered kW, by its own measure), if it said any."""
    claims = [
        entry
        for summary in sorted(site_summaries, key=lambda s: str(s["interval_start"]))
        for entry in (summary.get("control") or {}).get("demand_response", [])
        if entry.get("id") == event_id
    ]
    if not claims:
        return None
    last = claims[-1]
    return {
        key: None if last.get(key) is None else round(float(last[key]), 1)
        for key in ("baseline_kw", "max_projected_kw", "delivered_kw")
    }


def _timings(score: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The bound's solve times, taken out of the score: wall-clock figures are the one part
    of metrics.json that does not repeat, so they stand apart under `timing_s`."""
    timings: dict[str, dict[str, float]] = {}
    for factory, per in score.items():
        bound = per.get("hindsight")
        if isinstance(bound, dict):
            taken = {k: bound.pop(k) for k in ("solve_s", "extremes_solve_s") if k in bound}
            if taken:
                timings[factory] = taken
    return timings


def score_runs(scenario: Scenario, runs: dict[str, Run]) -> dict[str, Any]:
    """Each factory's day under each kind of control, scored on the plant's ground truth,
    beside the perfect-hindsight bound; the savings against no control."""
    emissions = EmissionsConfig()
    zone = scenario.timezone
    factories: dict[str, Any] = {}
    for factory in scenario.factories:
        name = factory.name
        tariff = scenario.tariff_of(factory)
        control = runs["agent"].agents[name].config.control
        min_times = {
            load.name: (load.min_on_s, load.min_off_s)
            for load in (control.loads if control else [])
        }
        per: dict[str, Any] = {
            mode: score(
                run.records[name],
                window_s=WINDOW_S,
                tariff=tariff,
                zone=zone,
                emissions=emissions,
                min_times=min_times,
            )
            for mode, run in runs.items()
        }
        none = runs.get("none")
        if none is not None and none.records[name].window_starts:  # a whole window to score
            per["hindsight"] = hindsight(
                none.records[name],
                none.machines[name],
                window_s=WINDOW_S,
                tariff=tariff,
                zone=zone,
                loads=[
                    LoadConfig.model_validate(policy)
                    for machine in factory.machines
                    for mode in ("agent", "limiter")
                    if (policy := machine.load_policy(mode)) is not None
                ],
            )
            base = per["none"]["cost_vnd"]
            bound = base - per["hindsight"]["cost_vnd"]
            for mode in ("agent", "limiter"):
                saved = base - per[mode]["cost_vnd"]
                per[mode]["cost_saved_vnd"] = saved
                per[mode]["cost_saved_pct"] = round(100 * saved / base, 2) if base else 0.0
                per[mode]["share_of_bound"] = round(saved / bound, 3) if bound > 0 else None
                per[mode]["peak_reduction_kw"] = round(
                    per["none"]["peak_window_demand_kw"] - per[mode]["peak_window_demand_kw"], 1
                )
                per[mode]["kwh_out_of_peak_hours"] = round(
                    per["none"]["peak_hours_kwh"] - per[mode]["peak_hours_kwh"], 1
                )
            per["hindsight"]["cost_saved_vnd"] = bound
            per["hindsight"]["cost_saved_pct"] = round(100 * bound / base, 2) if base else 0.0
        per["limit_kw"] = factory.limit_kw
        factories[name] = per
    factories["park"] = _park_totals(factories)
    return factories


def _park_totals(factories: dict[str, Any]) -> dict[str, Any]:
    """The park's sums: cost, savings and hard violations over its factories."""
    modes = {m for per in factories.values() for m in per if isinstance(per[m], dict)}
    totals: dict[str, Any] = {"limit_kw": None}
    for mode in sorted(modes):
        rows = [per[mode] for per in factories.values() if isinstance(per.get(mode), dict)]
        totals[mode] = {
            key: sum(r.get(key) or 0 for r in rows)
            for key in (
                "cost_vnd",
                "peak_hours_kwh",
                "co2_kg",
                "over_limit_kw_min",
                "deadlines_missed",
                "charging_shortfall_kwh",
                "min_on_off_breaches",
                "switching",
            )
            if any(key in r for r in rows)
        }
        breaches = [sum(r["process_band"].values()) for r in rows if "process_band" in r]
        if breaches:
            totals[mode]["process_breaches"] = round(sum(breaches), 1)
    if "none" in totals and "hindsight" in totals:
        base = totals["none"]["cost_vnd"]
        bound = base - totals["hindsight"]["cost_vnd"]
        for mode in ("agent", "limiter"):
            if mode in totals:
                saved = base - totals[mode]["cost_vnd"]
                totals[mode]["cost_saved_vnd"] = saved
                totals[mode]["cost_saved_pct"] = round(100 * saved / base, 2) if base else 0.0
                totals[mode]["share_of_bound"] = round(saved / bound, 3) if bound > 0 else None
        totals["hindsight"]["cost_saved_vnd"] = bound
        totals["hindsight"]["cost_saved_pct"] = round(100 * bound / base, 2) if base else 0.0
    return totals


def _metrics(scenario: Scenario, summaries: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    factories = {}
    for name, rows in summaries.items():
        meter = sorted(
            (r for r in rows if r["device"] == "incomer"), key=lambda r: r["interval_start"]
        )
        energy = [r["energy_import_kwh"] for r in meter if r["energy_import_kwh"] is not None]
        window_ends = [
            r["billing_window_demand_kw"]
            for r in meter
            if r["billing_window_demand_kw"] is not None
            and r["interval_end"][14:16] in ("00", "15", "30", "45")
        ]
        goods = [r["good_ratio"] for r in rows if r["good_ratio"] is not None]
        factories[name] = {
            "energy_kwh": round(sum(energy), 3),
            "peak_window_demand_kw": round(max(window_ends, default=0.0), 3),
            "cost_vnd": round(sum(r["cost_vnd"] or 0 for r in meter)),
            "co2_kg": round(sum(r["co2_kg"] or 0 for r in meter), 3),
            "summaries": len(rows),
            "data_quality": round(sum(goods) / len(goods), 4) if goods else None,
        }
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "hours": scenario.duration_h,
        "factories": factories,
        "park": {
            "energy_kwh": round(sum(f["energy_kwh"] for f in factories.values()), 3),
            "cost_vnd": sum(f["cost_vnd"] for f in factories.values()),
        },
    }
