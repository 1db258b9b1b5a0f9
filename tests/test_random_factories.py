"""Factories nobody here wrote: the agent is never worse than no control, and the bound is
never beaten, on ten seeded random factories (simulators/generator.py) run in-process.

The days are polled (and the plant stepped) every 15 s instead of the bench's 10 s, and run
two at a time, to keep the suite short; at 30 s the step alone takes compressors' receivers
and pumps' tanks out of their bands (4 of these 10 factories, 29-84 bar·s or %·s), which
would be charged to the control. The judge is the bench's (simulators/random_days.py), so a
failure here prints the bench's table for these factories.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from multiprocessing import get_context
from pathlib import Path

import pytest

from simulators.generator import (
    CUT_SHARE,
    LIMIT_SHARE,
    calibrate,
    draw,
    scenario_yaml,
    uncontrolled_peak_kw,
)
from simulators.machines import PHYSICS
from simulators.park_run import run_direct
from simulators.random_days import judge, table
from simulators.scenario import load_scenario

SEEDS = range(1, 11)
POLL_INTERVAL_S = 15.0


def test_a_seed_draws_one_factory_exactly() -> None:
    for seed in range(1, 41):
        first, second = draw(seed), draw(seed)
        assert first == second, seed
        assert first.scenario.model_dump_json() == second.scenario.model_dump_json(), seed
    assert draw(1).scenario != draw(2).scenario


def test_the_draws_stay_in_their_ranges() -> None:
    for seed in range(1, 41):
        drawn = draw(seed)
        factory = drawn.scenario.factories[0]
        assert LIMIT_SHARE[0] <= drawn.limit_share <= LIMIT_SHARE[1], seed
        assert 50 <= factory.base_load_kw <= 600, seed
        assert factory.limit_kw is None, "set by calibration"
        assert drawn.scenario.start.weekday() < 5, seed
        assert all(m.model in PHYSICS for m in factory.machines), seed
        counts = {m.model: 0 for m in factory.machines}
        for machine in factory.machines:
            counts[machine.model] += 1
        assert counts.get("batch-furnace", 0) <= 3, seed
        assert counts.get("air-compressor", 0) <= 4, seed
        assert counts.get("ev-charger", 0) + counts.get("forklift-charger", 0) <= 6, seed
        assert counts.get("rooftop-pv", 0) <= 1, seed
        request = drawn.demand_response
        if request is not None:
            assert CUT_SHARE[0] <= request.cut_share <= CUT_SHARE[1], seed
            assert 30 <= request.duration_min <= 120, seed


def test_a_calibrated_factory_reads_back_from_its_file(tmp_path: Path) -> None:
    drawn = next(d for d in map(draw, range(1, 41)) if d.demand_response is not None)
    scenario = drawn.calibrated(uncontrolled_peak_kw=640.0)
    limit = scenario.factories[0].limit_kw
    assert limit == round(drawn.limit_share * 640.0)
    assert drawn.demand_response is not None
    requests = [e for e in scenario.events if e.kind == "demand_response"]
    assert [r.limit_kw for r in requests] == [round(limit * (1 - drawn.demand_response.cut_share))]
    path = tmp_path / "factory.yaml"
    path.write_text(scenario_yaml(scenario, drawn))
    assert load_scenario(path) == scenario


async def test_a_seed_calibrates_to_one_scenario_and_one_uncontrolled_day() -> None:
    """The calibration's day is the no-control baseline of the score: the day again, with
    the limit and the requests set, is the same day, and calibrates to the same limit."""
    drawn = draw(SEEDS[0], poll_interval_s=POLL_INTERVAL_S)
    scenario, calibration = await calibrate(drawn)
    again = await run_direct(scenario, "none")
    name = scenario.factories[0].name
    assert dataclasses.asdict(calibration.records[name]) == dataclasses.asdict(again.records[name])
    assert drawn.calibrated(uncontrolled_peak_kw(again, name)) == scenario


@pytest.mark.skipif(
    not os.environ.get("EDGE_AGENT_LONG_TESTS"),
    reason="ten simulated days take some 6 minutes on two cores, more than the suite's "
    "budget: set EDGE_AGENT_LONG_TESTS=1 to run it (bench/random_factories.py runs the same "
    "judge at the bench's 10 s step: bench/README.md has its latest table)",
)
@pytest.mark.timeout(900)
def test_ten_random_factories_are_never_worse_than_no_control() -> None:
    """For every factory: the agent's peak, time over the limit and cost no higher than no
    control's, no hard violation of its own, and no run cheaper than the bound."""
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        rows = list(pool.map(judge, SEEDS, repeat(POLL_INTERVAL_S)))
    failed = [r for r in rows if r["failures"]]
    assert not failed, f"{len(failed)} of {len(rows)} factories fail:\n{table(rows)}"
