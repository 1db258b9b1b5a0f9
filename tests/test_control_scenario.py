"""The demo park through its busiest hours, the agent in control: no hard violation, and the
demand held where no control would go over the limit (in-process plant, same agent code)."""

from __future__ import annotations

from pathlib import Path

from simulators.park_run import run_direct
from simulators.park_score import score_runs
from simulators.scenario import load_scenario

SCENARIO = Path(__file__).parents[1] / "configs" / "scenarios" / "demo-park.yaml"


async def test_the_agent_holds_the_limit_with_zero_hard_violations() -> None:
    park = load_scenario(SCENARIO)
    # 12:00 to 20:00 local: the afternoon's batches, the evening peak and its
    # demand-response request, the chargers, the meter's outage.
    scenario = park.model_copy(update={"start": park.start.replace(hour=12), "duration_h": 8.0})
    runs = {mode: await run_direct(scenario, mode) for mode in ("agent", "none", "limiter")}
    score = score_runs(scenario, runs)
    agent = score["park"]["agent"]
    assert agent["process_breaches"] == 0
    assert agent["deadlines_missed"] == 0
    # A forklift that plugged in before noon cannot get its charge by its departure whatever
    # is done (the day starts with it half-way): the agent must add no shortfall of its own.
    assert agent["charging_shortfall_kwh"] <= score["park"]["none"]["charging_shortfall_kwh"]
    assert agent["min_on_off_breaches"] == 0
    press = score["press-shop"]
    assert press["none"]["over_limit_kw_min"] > 0, "the scenario must test the limit"
    assert press["agent"]["over_limit_kw_min"] == 0
    assert press["agent"]["cost_vnd"] < press["limiter"]["cost_vnd"]
