"""One poll loop per driver (a line, a gateway, or a device): fixed-rate ticks, faults contained.

Every poll group has ticks on a grid aligned to the epoch plus its phase (every 1 s at
:00.000, :01.000, ... or shifted), so a slow poll never shifts the ticks after it: the loop
skips the ticks a group missed and counts them as overruns. Groups due together are read in
order, one request at a time, since a line carries one request at a time.

Two kinds of fault, two answers:
- a device that does not answer (the line is fine) has its points marked BAD; after
  `degrade_after` misses in a row it is *degraded*: polled only at backoff intervals, so
  that its timeouts stop eating the other devices' poll rate, until it answers again;
- a lost connection marks every point of the driver BAD, and the loop reconnects with
  capped, jittered backoff.
Nothing a device does can stop another driver's loop or the agent.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from drivers.base import DeviceConfigError, DevicePolicy, DeviceUnavailable, Driver, PollGroup

from .backoff import Backoff
from .clock import Clock, next_boundary
from .model import Quality, Reading
from .ops.histogram import Histogram
from .process_image import ProcessImage

__all__ = ["ERROR_KINDS", "DeviceStats", "Poller", "PollerStats", "error_kind"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DeviceStats:
    polls: int = 0
    """Group reads that succeeded."""
    errors: int = 0
    """Group reads that got no answer."""
    overruns: int = 0
    """Ticks skipped because the line was still busy with earlier polls."""
    degraded: bool = False
    last_success: datetime | None = None
    """The last group read the device answered, even with an exception for every point."""
    last_good: datetime | None = None
    """The last read with at least one good value: a device that answers every poll with a
    Modbus exception is answering, but measuring nothing."""
    last_error: str | None = None
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    """Faults by `error_kind`: polls without an answer, polls with refused or undecodable
    points, and lost or refused connections (counted for every device on the line)."""
    round_trip_s: Histogram = field(default_factory=Histogram)
    """Clock time of each answered group read: request to last reply."""

    def count_error(self, kind: str) -> None:
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1


ERROR_KINDS = ("timeout", "disconnect", "exception", "garbage", "config")
"""What an operator does differently for each: wiring or unit id, network, register map,
byte order or framing, the site file."""


def error_kind(message: str) -> str:
    """The kind of a fault from the driver's message, which is all the Driver contract gives."""
    text = message.lower()
    if "exception" in text:
        return "exception"
    if any(s in text for s in ("no valid answer", "cannot decode", ", got ", "returned nan")):
        return "garbage"
    if any(s in text for s in ("cannot connect", "connection lost", "not connected")):
        return "disconnect"
    return "timeout"


def _point_fault(reading: Reading) -> str | None:
    """`exception` or `garbage` for a point the device refused or sent undecodable, else None
    (a point with no value yet is not a device fault)."""
    if reading.quality is not Quality.BAD or reading.error is None:
        return None
    kind = error_kind(reading.error)
    return kind if kind in ("exception", "garbage") else None


@dataclass(slots=True)
class PollerStats:
    connected: bool = False
    connection_failures: int = 0
    devices: dict[str, DeviceStats] = field(default_factory=dict)
    lateness_s: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """How late each of the recent group reads started after its tick (seconds)."""


@dataclass(order=True, slots=True)
class _Due:
    at: datetime
    seq: int
    group: PollGroup = field(compare=False)


@dataclass(slots=True)
class _Health:
    policy: DevicePolicy
    backoff: Backoff
    misses: int = 0
    retry_at: datetime | None = None


class Poller:
    def __init__(
        self,
        driver: Driver,
        image: ProcessImage,
        clock: Clock,
        backoff: Backoff,
        *,
        policies: dict[str, DevicePolicy] | None = None,
        site: str = "",
        context: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        """`context` holds, per device, the fields its log records carry (`unit`, `address`,
        `endpoint`...), so a line about a device names where to look."""
        self._driver = driver
        self._image = image
        self._clock = clock
        self._backoff = backoff
        self._groups = list(driver.poll_groups())
        self._label = f"{site}/{driver.name}" if site else driver.name
        context = context or {}
        self._extra: dict[str, dict[str, object]] = {
            d: {"site": site, "line": driver.name, "device": d, **context.get(d, {})}
            for d in driver.devices
        }
        self._line_extra: dict[str, object] = {
            "site": site,
            "line": driver.name,
            "device": ",".join(driver.devices),
        }
        if len(driver.devices) == 1:  # a line of one device: its unit too
            self._line_extra = dict(self._extra[driver.devices[0]])
        elif driver.devices:
            first = context.get(driver.devices[0], {})
            self._line_extra.update({k: first[k] for k in ("address", "endpoint") if k in first})
        policies = policies or {}
        self._health = {
            d: _Health(
                policies.get(d, DevicePolicy()),
                Backoff(
                    policies.get(d, DevicePolicy()).retry_initial_s,
                    policies.get(d, DevicePolicy()).retry_max_s,
                    rng=backoff.rng,
                ),
            )
            for d in driver.devices
        }
        self.stats = PollerStats(devices={d: DeviceStats() for d in driver.devices})
        self._seq = itertools.count()

    async def run(self) -> None:
        """Poll until cancelled. Returns early only for a configuration fault."""
        while True:
            try:
                async with self._driver:
                    self.stats.connected = True
                    if self._backoff.failures:
                        log.info("%s: connected again", self._label, extra=self._line_extra)
                    self._backoff.reset()
                    await self._poll_forever()
            except DeviceUnavailable as exc:
                await self._connection_lost(str(exc))
            except DeviceConfigError as exc:
                log.error(
                    "%s: configuration does not match the device, not polling it: %s",
                    self._label,
                    exc,
                    extra=self._line_extra,
                )
                for stats in self.stats.devices.values():
                    stats.count_error("config")
                    stats.last_error = str(exc)
                self._mark_bad(self._groups, str(exc))
                self.stats.connected = False
                return

    async def _connection_lost(self, error: str) -> None:
        self.stats.connected = False
        self.stats.connection_failures += 1
        for stats in self.stats.devices.values():
            stats.count_error("disconnect")
            stats.last_error = error
        self._mark_bad(self._groups, error)
        delay = self._backoff.next_delay_s()
        log.warning(
            "%s: %s; reconnecting in %.1f s (attempt %d)",
            self._label,
            error,
            delay,
            self._backoff.failures,
            extra={**self._line_extra, "fold_as": f"{self._label}: {error}"},
        )
        await self._clock.sleep(delay)

    async def _poll_forever(self) -> None:
        now = self._clock.now()
        queue = [_Due(self._first_tick(g, now), next(self._seq), g) for g in self._groups]
        heapq.heapify(queue)
        while True:
            due = heapq.heappop(queue)
            await self._clock.sleep_until(due.at)
            health = self._health[due.group.device]
            if health.retry_at is None or self._clock.now() >= health.retry_at:
                self.stats.lateness_s.append((self._clock.now() - due.at).total_seconds())
                await self._poll(due.group, health)
            heapq.heappush(queue, _Due(self._next_tick(due, health), next(self._seq), due.group))
            await asyncio.sleep(0)  # a line that is always late must still let others run

    async def _poll(self, group: PollGroup, health: _Health) -> None:
        stats = self.stats.devices[group.device]
        started = self._clock.now()
        try:
            readings = await self._driver.read(group, started)
        except DeviceUnavailable as exc:
            if exc.device is None:
                raise
            self._missed(group, health, stats, str(exc))
            return
        self._image.update(readings)
        stats.polls += 1
        stats.last_success = self._clock.now()
        stats.round_trip_s.observe((stats.last_success - started).total_seconds())
        for kind in {k for r in readings if (k := _point_fault(r))}:
            stats.count_error(kind)
        if any(r.quality is Quality.GOOD for r in readings):
            stats.last_good = stats.last_success
        elif faults := [r.error for r in readings if r.error is not None]:
            stats.last_error = faults[0]
        if health.misses >= health.policy.degrade_after:
            log.info(
                "%s: %s answers again after %d misses",
                self._label,
                group.device,
                health.misses,
                extra=self._extra[group.device],
            )
        health.misses, health.retry_at = 0, None
        health.backoff.reset()
        stats.degraded = False

    def _missed(self, group: PollGroup, health: _Health, stats: DeviceStats, error: str) -> None:
        health.misses += 1
        stats.errors += 1
        stats.count_error(error_kind(error))
        stats.last_error = error
        device_groups = [g for g in self._groups if g.device == group.device]
        self._mark_bad(device_groups, error)
        if health.misses >= health.policy.degrade_after:
            delay = health.backoff.next_delay_s()
            health.retry_at = self._clock.now() + timedelta(seconds=delay)
            if not stats.degraded:
                log.warning(
                    "%s: %s degraded after %d misses (%s); polled every %.1f s or "
                    "less until it answers",
                    self._label,
                    group.device,
                    health.misses,
                    error,
                    delay,
                    extra=self._extra[group.device],
                )
            stats.degraded = True

    def _mark_bad(self, groups: list[PollGroup], error: str) -> None:
        now = self._clock.now()
        self._image.mark_bad([p for g in groups for p in g.points], now, error)

    def _first_tick(self, group: PollGroup, now: datetime) -> datetime:
        shifted = now - timedelta(seconds=group.phase_s)
        if shifted.timestamp() % group.interval_s == 0:
            return now
        return next_boundary(now, group.interval_s, phase_s=group.phase_s)

    def _next_tick(self, due: _Due, health: _Health) -> datetime:
        group = due.group
        following = due.at + timedelta(seconds=group.interval_s)
        now = self._clock.now()
        if health.retry_at is not None and health.retry_at > following:
            return next_boundary(
                health.retry_at - timedelta(microseconds=1), group.interval_s, phase_s=group.phase_s
            )
        if now <= following:
            return following
        late = next_boundary(now, group.interval_s, phase_s=group.phase_s)
        skipped = round((late - following).total_seconds() / group.interval_s)
        self.stats.devices[group.device].overruns += skipped
        return late
