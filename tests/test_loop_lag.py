"""The event loop's lag: what a step that holds the loop costs every poll, measured."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from edge_agent.ops.loop_lag import LoopLag


def _hold_the_loop(seconds: float) -> None:
    """What the ticker is there to catch: a CPU-heavy step run on the loop (a solve, a big
    JSON), here a busy loop of `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def test_a_step_that_holds_the_loop_shows_as_lag_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lag = LoopLag(interval_s=0.01, warn_s=0.1)
    async with asyncio.TaskGroup() as group:
        ticker = group.create_task(lag.run())
        await lag.ticked.wait()
        lag.ticked.clear()
        _hold_the_loop(0.3)
        await lag.ticked.wait()
        ticker.cancel()
    assert lag.max_s >= 0.25
    assert lag.histogram.count >= 2
    assert any("the event loop ran" in r.getMessage() for r in caplog.records)


def test_lag_below_the_threshold_is_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    lag = LoopLag(warn_s=0.1)
    with caplog.at_level(logging.WARNING):
        lag.observe(0.002)
        lag.observe(-0.001)  # woken a hair early: no lag
    assert lag.histogram.count == 2
    assert lag.max_s == pytest.approx(0.002)
    assert not caplog.records
