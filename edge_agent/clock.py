"""One clock for everything that waits.

Every loop in the agent, the simulators and the benchmarks asks a `Clock` for the time and
sleeps on it. On a gateway that is `SystemClock`; in tests, benchmarks and the bench
simulator it is `SimClock`, which only moves when told to, so a simulated day runs as fast as
the real protocol stacks can answer and every run of the same inputs gives the same result.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

__all__ = ["Clock", "SimClock", "SystemClock", "next_boundary"]

T = TypeVar("T")


class Clock(Protocol):
    """The time source and the only way to wait for a moment."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep_until(self, deadline: datetime) -> None:
        """Return at or after `deadline`; returns at once if it has passed."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...

    def track(self, task: asyncio.Task[object]) -> None:
        """`task` is driven by this clock: time may not move on until it waits on the clock.

        Call it for each task that loops on the clock, right after creating it.
        """
        ...

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        """`awaitable`'s result, or TimeoutError after `timeout_s` of this clock's time.

        Request timeouts of the drivers go through here, so that a device that does not
        answer costs simulated time on a bench, exactly as it costs real time on a plant.
        """
        ...


class SystemClock:
    """Wall-clock time for a real gateway.

    Sleeps are measured against the event loop's monotonic clock, so a step of the system
    clock (NTP) neither wakes a loop early nor stalls it for the size of the step.
    """

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: datetime) -> None:
        delay = (deadline - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def track(self, task: asyncio.Task[object]) -> None:
        pass

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        return await asyncio.wait_for(awaitable, timeout_s)


@dataclass(order=True)
class _Sleeper:
    deadline: datetime
    seq: int
    future: asyncio.Future[None] = field(compare=False)
    task: asyncio.Task[object] | None = field(compare=False)


class SimClock:
    """Simulated time that moves only in `advance` / `advance_to`.

    `advance_to(t)` wakes every sleeper whose deadline is due, in deadline order, with `now()`
    equal to that deadline, and waits until each woken task has parked on the clock again (or
    finished) before moving on. Real I/O that a woken task does (a Modbus request, an MQTT
    publish) therefore completes inside the simulated instant, which is what makes a run
    deterministic: time never passes while a request is in flight.

    `settle_timeout_s` bounds, in real seconds, how long one instant may take; it turns a task
    that never parks again into a clear error instead of a hung test.

    `wait_for` gives real I/O up to `io_grace_s` real seconds to complete inside the current
    instant (loopback answers take about a millisecond); an answer that has not come by then
    is treated as no answer, and the timeout then runs in simulated time.
    """

    def __init__(
        self,
        start: datetime | None = None,
        *,
        settle_timeout_s: float = 30.0,
        io_grace_s: float = 0.5,
    ) -> None:
        self._now = start or datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("SimClock needs a timezone-aware start time")
        self._now = self._now.astimezone(UTC)  # as SystemClock: UTC, whatever the start says
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()
        self._running: set[asyncio.Task[object]] = set()
        self._parked = asyncio.Event()
        self._parked.set()
        self._settle_timeout_s = settle_timeout_s
        self._io_grace_s = io_grace_s

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + timedelta(seconds=max(0.0, seconds)))

    async def sleep_until(self, deadline: datetime) -> None:
        if deadline <= self._now:
            # Yield once so that a loop which is behind cannot starve the event loop.
            await asyncio.sleep(0)
            return
        task = asyncio.current_task()
        self._mark_parked(task)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(deadline, next(self._seq), future, task))
        await future

    def track(self, task: asyncio.Task[object]) -> None:
        self._mark_running(task)

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        work = asyncio.ensure_future(awaitable)
        try:
            return await asyncio.wait_for(asyncio.shield(work), self._io_grace_s)
        except TimeoutError:
            pass
        # No answer within the grace: wait on simulated time, parked, so the clock can move.
        caller = asyncio.current_task()
        deadline = self._now + timedelta(seconds=timeout_s)
        expired: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(deadline, next(self._seq), expired, caller))
        self._mark_parked(caller)
        try:
            waiting: set[asyncio.Future[Any]] = {work, expired}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not expired.done():
                expired.cancel()
                if caller is not None:
                    self._mark_running(caller)  # a late answer woke us, not the clock
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise TimeoutError(f"no answer within {timeout_s:g} s")

    def next_deadline(self) -> datetime | None:
        """The earliest deadline anyone waits for, or None when nobody sleeps."""
        self._drop_cancelled()
        return self._sleepers[0].deadline if self._sleepers else None

    async def advance(self, seconds: float) -> None:
        await self.advance_to(self._now + timedelta(seconds=seconds))

    async def advance_to(self, target: datetime) -> None:
        """Run every timer due up to `target`, then set the time to `target`."""
        await self._settle()
        while True:
            self._drop_cancelled()
            if not self._sleepers or self._sleepers[0].deadline > target:
                break
            instant = self._sleepers[0].deadline
            self._now = max(self._now, instant)
            while self._sleepers and self._sleepers[0].deadline <= instant:
                sleeper = heapq.heappop(self._sleepers)
                if sleeper.future.done():
                    continue
                if sleeper.task is not None:
                    self._mark_running(sleeper.task)
                sleeper.future.set_result(None)
            await self._settle()
        self._now = max(self._now, target)

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0].future.done():
            heapq.heappop(self._sleepers)

    def _mark_running(self, task: asyncio.Task[object]) -> None:
        if task in self._running or task.done():
            return
        self._running.add(task)
        self._parked.clear()
        task.add_done_callback(self._mark_parked)

    def _mark_parked(self, task: asyncio.Task[object] | None) -> None:
        if task is None or task not in self._running:
            return
        self._running.discard(task)
        task.remove_done_callback(self._mark_parked)
        if not self._running:
            self._parked.set()

    async def _settle(self) -> None:
        # Let callbacks scheduled by the wake-up run even when nobody was marked running.
        await asyncio.sleep(0)
        try:
            await asyncio.wait_for(self._parked.wait(), self._settle_timeout_s)
        except TimeoutError:
            names = ", ".join(sorted(t.get_name() for t in self._running))
            raise RuntimeError(
                f"SimClock: tasks did not return to the clock within "
                f"{self._settle_timeout_s} s at {self._now.isoformat()}: {names}"
            ) from None


def next_boundary(now: datetime, period_s: float, *, phase_s: float = 0.0) -> datetime:
    """The first instant strictly after `now` on the grid k * period + phase (Unix epoch).

    Aligning to the epoch rather than to the start of the process is what makes every agent
    in a park close its 60 s and 15 min intervals at the same wall-clock instants.
    """
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    t = now.timestamp() - phase_s
    k = math.floor(t / period_s) + 1
    return datetime.fromtimestamp(k * period_s + phase_s, UTC)
