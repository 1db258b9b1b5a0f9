"""A day of the park on the bench, from the scenario to the written report: `simulate`.

The rooms it walks through, each with one job: the scenario file (simulators/scenario.py);
the factories' plant models (factory.py) and their agents' site files (site.py); the day
itself (park_run.py: the plant served on loopback, one agent per factory and an MQTT
broker, one `SimClock` moved through the day as fast as the stacks answer, the scenario's
events at their moments); the score (park_score.py); and what people read (report.py).
The same scenario and seed give the same metrics.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .load_policies import Mode
from .park_run import direct_day, run_direct, run_protocols
from .park_score import park_metrics, score_runs
from .report import report_page, window_series
from .scenario import Scenario

__all__ = [
    # Imported from here by simulators/generator.py and random_days.py (the first from
    # simulators/scenario.py, the second from simulators/park_score.py).
    "Scenario",
    "score_runs",
    "simulate",
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
