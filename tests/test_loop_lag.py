"""The event loop's lag: what a step that holds the loop costs every poll, measured."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from edge_agent.ops.loop_lag import LoopLag


async def test_a_step_that_holds_the_loop_shows_as_lag_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lag = LoopLag(interval_s=0.01, warn_s=0.1)
    async with asyncio.TaskGroup() as group:
        ticker = group.create_task(lag.run())
        await lag.ticked.wait()
        lag.ticked.clear()
        time.sleep(0.3)  # noqa: ASYNC251 - the behaviour under test: a step that blocks the loop
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
