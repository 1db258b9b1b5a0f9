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
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.energy.tariff import price_at

from .load_policies import Mode
from .park_run import WINDOW_S, Run, direct_day, run_direct, run_protocols
from .park_score import park_metrics, score_runs
from .report import report_page
from .scenario import FactorySpec, Scenario

__all__ = [
    # Imported from here by simulators/generator.py and random_days.py (the first from
    # simulators/scenario.py, the second from simulators/park_score.py).
    "Scenario",
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
    metrics = park_metrics(scenario, runs)
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
