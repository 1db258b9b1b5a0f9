"""A park on the bench: scenarios, and simulated days with the real protocol stacks.

A scenario (configs/scenarios/*.yaml) names the park's factories: each has a process base
load with shifts, an incoming-supply meter (Modbus, the catalogue map) that measures the
base load plus its machines, and machines over OPC UA. `simulate()` serves them all on
loopback, runs one agent per factory and an MQTT broker, and moves one `SimClock` through
the day as fast as the stacks answer. The same scenario and seed give the same metrics.

A scenario's `events:` (simulators/events.py) happen at their moments: a demand-response
request sent to an agent as a real command, a device that stops answering, a broker outage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.control.config import LoadConfig
from edge_agent.energy.tariff import EmissionsConfig, price_at

from .load_policies import Mode
from .park_run import WINDOW_S, Run, direct_day, run_direct, run_protocols
from .report import report_page
from .scenario import FactorySpec, Scenario
from .scoring import FactoryRecord, check_bound, hindsight, score

__all__ = [
    # Scenario is imported from here by simulators/generator.py and random_days.py.
    "Scenario",
    "demand_response_outcomes",
    "score_runs",
    "simulate",
    "window_series",
]


async def simulate(
    scenario: Scenario,
    out: Path,
    *,
    progress: Callable[[float], None] | None = None,
    baselines: bool = True,
    in_process: bool = False,
) -> dict[str, Any]:
    """Run the scenario's agents over the protocol stacks (with `in_process`, the same agent
    code with the plant in-process: no sockets, no broker); with `baselines`, run it again
    in-process without control and with a classic limiter, and solve the perfect-hindsight
    bound; write `metrics.json`, a `series-<factory>.csv` per factory and `report.html`
    into `out`; the metrics."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    modes: tuple[Mode, ...] = ("none", "limiter") if baselines else ()
    # The baselines run in a process of their own, on the other core, while the main run
    # (one event loop, one core) goes on here.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        loop = asyncio.get_running_loop()
        pending = {
            mode: loop.run_in_executor(pool, direct_day, scenario.model_dump_json(), mode)
            for mode in modes
        }
        main = await (
            run_direct(scenario, "agent", progress=progress)
            if in_process
            else run_protocols(scenario, "agent", progress=progress)
        )
        runs = {"agent": main} | {mode: await future for mode, future in pending.items()}
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
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    for factory in scenario.factories:
        series = window_series(scenario, factory, runs, metrics["score"][factory.name])
        (out / f"series-{factory.name}.csv").write_text(series)
    (out / "report.html").write_text(report_page(scenario, metrics, runs))
    return metrics


def window_series(
    scenario: Scenario, factory: FactorySpec, runs: dict[str, Run], score: dict[str, Any]
) -> str:
    """The factory's day as CSV, one row per 15-min window: its start (local ISO time),
    then each run's ground-truth demand (kW, the window's average) and cost (VND, at the
    price of the window's start); the bound's too when its result has a `demand_kw` list."""
    zone, tariff = scenario.timezone, scenario.tariff_of(factory)
    starts = runs["agent"].records[factory.name].window_starts
    hours = WINDOW_S / 3600
    columns: dict[str, list[float]] = {
        mode: [kwh / hours for kwh in run.records[factory.name].import_kwh]
        for mode, run in runs.items()
    }
    bound = _bound_demand(score)
    if bound is not None:
        columns["hindsight"] = bound
    lines = ["window_start," + ",".join(f"{m}_kw,{m}_vnd" for m in columns)]
    for i, start in enumerate(starts):
        price = price_at(tariff, start, zone)[1]
        cells = [start.astimezone(ZoneInfo(zone)).isoformat()]
        for values in columns.values():
            if i < len(values):
                kw = values[i]
                cells += [f"{kw:.3f}", f"{max(0.0, kw) * hours * price:.0f}"]
            else:
                cells += ["", ""]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _bound_demand(score: dict[str, Any]) -> list[float] | None:
    """The bound's demand per window (kW), when its result says it."""
    demand = (score.get("hindsight") or {}).get("demand_kw")
    return [float(kw) for kw in demand] if isinstance(demand, list) else None


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
