"""Poll loops: fixed rate without drift, overruns counted, faults contained and retried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Self

from drivers.base import DeviceUnavailable, PollGroup
from edge_agent.backoff import Backoff
from edge_agent.clock import SimClock
from edge_agent.model import Quality, Reading
from edge_agent.polling import Poller
from edge_agent.process_image import ProcessImage
from tests.conftest import START


class ScriptedDevice:
    """A driver of our own `Driver` interface whose reads take scripted simulated time.

    This exercises the poller's scheduling alone; the protocol path is covered against real
    servers in test_modbus_driver and test_end_to_end.
    """

    def __init__(
        self,
        clock: SimClock,
        durations: list[float],
        *,
        groups: Sequence[PollGroup] = (PollGroup("dev", 1.0, ("dev/p",)),),
    ) -> None:
        self._clock = clock
        self._durations = durations
        self._groups = list(groups)
        self.reads: list[tuple[datetime, float]] = []
        self.connect_failures = 0

    @property
    def name(self) -> str:
        return "line"

    @property
    def devices(self) -> Sequence[str]:
        return sorted({g.device for g in self._groups})

    def poll_groups(self) -> Sequence[PollGroup]:
        return self._groups

    async def __aenter__(self) -> Self:
        if self.connect_failures:
            self.connect_failures -= 1
            raise DeviceUnavailable("connection refused")
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self, group: PollGroup, at: datetime) -> list[Reading]:
        self.reads.append((at, group.interval_s))
        duration = self._durations.pop(0) if self._durations else 0.0
        if duration < 0:
            raise DeviceUnavailable("connection lost")
        await self._clock.sleep(duration)
        return [Reading.good(p, 1.0, at) for p in group.points]

    async def write(self, point: str, value: float | bool) -> None:
        raise NotImplementedError


async def run_for(clock: SimClock, poller: Poller, seconds: float) -> None:
    async with asyncio.TaskGroup() as group:
        task = group.create_task(poller.run())
        clock.track(task)
        await clock.advance(seconds)
        task.cancel()


async def test_a_slow_poll_does_not_shift_later_ticks(clock: SimClock) -> None:
    device = ScriptedDevice(clock, [0.2, 2.5, 0.2, 0.2, 0.2])
    poller = Poller(device, ProcessImage(), clock, Backoff())
    await run_for(clock, poller, 6.5)
    seconds = [(at - START).total_seconds() for at, _ in device.reads]
    # The 2.5 s poll at t=1 runs until 3.5: ticks 2 and 3 are skipped, 4 is on time.
    assert seconds == [0, 1, 4, 5, 6]
    assert poller.stats.devices["dev"].overruns == 2
    assert poller.stats.devices["dev"].polls == 5


async def test_slower_groups_are_polled_on_their_own_grid(clock: SimClock) -> None:
    groups = (PollGroup("dev", 1.0, ("dev/power",)), PollGroup("dev", 5.0, ("dev/energy",)))
    device = ScriptedDevice(clock, [], groups=groups)
    poller = Poller(device, ProcessImage(), clock, Backoff())
    await run_for(clock, poller, 10.5)
    slow = [(at - START).total_seconds() for at, interval in device.reads if interval == 5.0]
    fast = [at for at, interval in device.reads if interval == 1.0]
    assert slow == [0, 5, 10]
    assert len(fast) == 11


async def test_a_lost_connection_goes_bad_and_is_retried_with_backoff(clock: SimClock) -> None:
    device = ScriptedDevice(clock, [0.0, -1.0])  # the second read loses the connection
    device_image = ProcessImage()
    poller = Poller(device, device_image, clock, Backoff(initial_s=1, max_s=4))
    async with asyncio.TaskGroup() as group:
        task = group.create_task(poller.run())
        clock.track(task)
        await clock.advance(1)
        reading = device_image.get("dev/p", clock.now())
        assert reading is not None
        assert reading.quality is Quality.BAD
        assert reading.error == "connection lost"
        assert poller.stats.connection_failures == 1
        device.connect_failures = 2
        await clock.advance(30)
        task.cancel()
    assert poller.stats.connection_failures == 3
    reading = device_image.get("dev/p", clock.now() - timedelta(seconds=0.5))
    assert reading is not None
    assert reading.quality is Quality.GOOD


def test_an_old_good_value_is_reported_stale() -> None:
    image = ProcessImage({"dev/p": timedelta(seconds=3)})
    image.update([Reading.good("dev/p", 5.0, START)])
    fresh = image.get("dev/p", START + timedelta(seconds=3))
    stale = image.get("dev/p", START + timedelta(seconds=3.5))
    assert fresh is not None
    assert fresh.quality is Quality.GOOD
    assert stale is not None
    assert stale.quality is Quality.STALE
    assert stale.value is None
