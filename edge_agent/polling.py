"""One poll loop per device: fixed-rate ticks on the clock, faults contained.

Ticks sit on a grid aligned to the epoch (every 1 s at :00.000, :01.000, ...), so a slow
poll never shifts the ticks after it: the loop skips the ticks it missed and counts them as
overruns. A device that cannot be reached has its points marked BAD and is reconnected with
capped, jittered backoff; nothing it does can stop another device's loop or the agent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from drivers.base import DeviceConfigError, DeviceUnavailable, Driver, PollGroup

from .backoff import Backoff
from .clock import Clock, next_boundary
from .process_image import ProcessImage

__all__ = ["DevicePoller", "PollStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PollStats:
    cycles: int = 0
    """Ticks on which at least one group was read successfully."""
    overruns: int = 0
    """Ticks skipped because the previous poll ran past them."""
    failures: int = 0
    """Connections lost or refused."""
    connected: bool = False
    last_success: datetime | None = None


class DevicePoller:
    def __init__(
        self, driver: Driver, image: ProcessImage, clock: Clock, backoff: Backoff, *, site: str = ""
    ) -> None:
        self._driver = driver
        self._image = image
        self._clock = clock
        self._backoff = backoff
        self._groups = list(driver.poll_groups())
        self._base_s = min(g.interval_s for g in self._groups)
        self._points = [p for g in self._groups for p in g.points]
        self._label = f"{site}/{driver.device}" if site else driver.device
        self.stats = PollStats()

    async def run(self) -> None:
        """Poll until cancelled. Returns early only for a configuration fault of the device."""
        while True:
            try:
                async with self._driver:
                    self.stats.connected = True
                    if self._backoff.failures:
                        log.info("%s: connected again", self._label)
                    await self._poll_forever()
            except DeviceUnavailable as exc:
                await self._lost(str(exc))
            except DeviceConfigError as exc:
                log.error(
                    "%s: configuration does not match the device, not polling it: %s",
                    self._label,
                    exc,
                )
                self._image.mark_bad(self._points, self._clock.now(), str(exc))
                self.stats.connected = False
                return

    async def _lost(self, error: str) -> None:
        self.stats.connected = False
        self.stats.failures += 1
        self._image.mark_bad(self._points, self._clock.now(), error)
        delay = self._backoff.next_delay_s()
        log.warning(
            "%s: %s; retrying in %.1f s (attempt %d)",
            self._label,
            error,
            delay,
            self._backoff.failures,
        )
        await self._clock.sleep(delay)

    async def _poll_forever(self) -> None:
        tick = self._first_tick(self._clock.now())
        while True:
            await self._clock.sleep_until(tick)
            polled = False
            for group in self._due(tick):
                readings = await self._driver.read(group, self._clock.now())
                self._image.update(readings)
                polled = True
            if polled:
                self.stats.cycles += 1
                self.stats.last_success = self._clock.now()
                self._backoff.reset()
            tick = self._next_tick(tick)
            await asyncio.sleep(0)  # a loop that is always late must still let others run

    def _first_tick(self, now: datetime) -> datetime:
        on_grid = now.timestamp() % self._base_s == 0
        return now if on_grid else next_boundary(now, self._base_s)

    def _next_tick(self, tick: datetime) -> datetime:
        following = tick + timedelta(seconds=self._base_s)
        now = self._clock.now()
        if now <= following:
            return following
        late = next_boundary(now, self._base_s)
        missed = round((late - following).total_seconds() / self._base_s)
        self.stats.overruns += missed
        return late

    def _due(self, tick: datetime) -> list[PollGroup]:
        t = round(tick.timestamp(), 6)
        return [g for g in self._groups if abs((t / g.interval_s) - round(t / g.interval_s)) < 1e-6]
