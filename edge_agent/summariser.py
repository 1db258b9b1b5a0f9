"""Interval accounting: readings in, one summary per device per interval out.

Intervals are aligned to multiples of their length since the epoch, so every agent of a
park closes the same intervals at the same instants. The summary for [start, end) is built
`settle_s` after `end`, when the poll at `end` has surely landed:

- power statistics use the good readings stamped in [start, end);
- interval energy is the energy register's boundary value at `end` minus that at `start`,
  where a boundary value is the first good reading within `settle_s` after the boundary (the
  poll made on it), else the last one before it. Register deltas (not integrated power) are
  what the utility bills, and they lose nothing when a poll fails.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .clock import Clock, next_boundary
from .config.schema import Device, SiteConfig
from .control.controller import ControlReport
from .energy.tariff import price_at
from .model import Quality, Reading, count
from .northbound.outbox import Outbox
from .northbound.payloads import (
    ActionRecord,
    ControlSummary,
    DemandResponseOutcome,
    DeviceSummary,
    LatestValue,
    LoadTime,
    SiteSummary,
)
from .northbound.topics import Topics

__all__ = ["Summariser"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Bucket:
    """Accumulators of one device over one interval."""

    power_sum_kw: float = 0.0
    power_count: int = 0
    power_max_kw: float | None = None
    power_min_kw: float | None = None
    power_factor: float | None = None
    samples: int = 0
    good: int = 0
    latest: dict[str, Reading] = field(default_factory=dict)


@dataclass(slots=True)
class _DeviceBook:
    device: Device
    roles: Mapping[str, str]
    """point id -> role"""
    buckets: dict[datetime, _Bucket] = field(default_factory=dict)
    energy: dict[str, deque[tuple[datetime, float]]] = field(default_factory=dict)
    """role -> recent good energy readings (time, kWh), oldest first."""
    window: tuple[datetime, float | None] | None = None
    """The billing window now open: its start, and the import register's value there."""


class Summariser:
    def __init__(
        self, config: SiteConfig, clock: Clock, outbox: Outbox, *, first_seq: int = 1
    ) -> None:
        self._clock = clock
        self._outbox = outbox
        self._interval = timedelta(seconds=config.summary.interval_s)
        self._settle = timedelta(seconds=config.summary.settle_s)
        self._topics = Topics(config.broker.topic_prefix, config.site.park, config.site.name)
        self._site = config.site
        self._tariff = config.tariff
        self._co2_per_kwh = config.emissions.grid_kg_co2_per_kwh
        self._window_s = config.summary.billing_window_s
        self._seq = first_seq
        self.control: Callable[[], ControlReport] | None = None
        """Set by the agent when it controls loads: the site summary then carries control."""
        self._meter = config.control.meter if config.control is not None else None
        self._books: dict[str, _DeviceBook] = {}
        self._device_of: dict[str, _DeviceBook] = {}
        self.apply(config.devices)

    def apply(self, devices: Sequence[Device]) -> None:
        """Summarise these devices from now on (a reload): a removed device's open interval
        is dropped, an added one is summarised from the next close, and a changed one keeps
        its interval and energy history under its new points and roles."""
        books = {}
        for device in devices:
            roles = {f"{device.name}/{n}": p.role for n, p in device.points.items() if p.role}
            book = self._books.get(device.name) or _DeviceBook(device, roles)
            book.device, book.roles = device, roles
            books[device.name] = book
        self._books = books
        self._device_of = {
            f"{device.name}/{name}": books[device.name]
            for device in devices
            for name in device.points
        }

    def on_readings(self, readings: list[Reading]) -> None:
        """ProcessImage listener: file each reading under its device and interval."""
        last_book, last_at, bucket = None, None, _Bucket()
        for reading in readings:
            book = self._device_of.get(reading.point)
            if book is None:
                continue
            if book is not last_book or reading.at != last_at:  # a poll shares both
                last_book, last_at = book, reading.at
                bucket = book.buckets.setdefault(self._interval_start(reading.at), _Bucket())
            self._add(book, bucket, reading)

    async def run(self) -> None:
        """Close each interval `settle_s` after it ends, until cancelled."""
        end = next_boundary(self._clock.now(), self._interval.total_seconds())
        while True:
            await self._clock.sleep_until(end + self._settle)
            await self.close_interval(end - self._interval, end)
            end += self._interval

    async def close_interval(self, start: datetime, end: datetime) -> None:
        dropped = await self._outbox.take_dropped()
        meter: DeviceSummary | None = None
        for book in self._books.values():
            self._seq = await self._outbox.next_seq()
            summary = self._summarise(book, start, end).model_copy(
                update={"outbox_dropped": dropped}
            )
            if book.device.name == self._meter:
                meter = summary
            await self._outbox.put(
                self._topics.device_summary(book.device.name),
                summary.model_dump_json(by_alias=True).encode(),
            )
            log.info(
                "summary #%d stored: %s/%s %s-%s: %s kWh, average %s kW, peak %s kW, %s good",
                summary.seq,
                self._site.name,
                book.device.name,
                f"{start:%H:%M:%S}",
                f"{end:%H:%M:%S}",
                _fmt(summary.energy_import_kwh, ".3f"),
                _fmt(summary.power_avg_kw, ".1f"),
                _fmt(summary.power_max_kw, ".1f"),
                _fmt(summary.good_ratio, ".0%"),
            )
        if self.control is not None and meter is not None:
            await self._site_summary(meter, self.control(), dropped)

    async def _site_summary(
        self, meter: DeviceSummary, report: ControlReport, dropped: int
    ) -> None:
        summary = SiteSummary(
            park=self._site.park,
            site=self._site.name,
            seq=await self._outbox.next_seq(),
            interval_start=meter.interval_start,
            interval_end=meter.interval_end,
            meter=meter.device,
            energy_import_kwh=meter.energy_import_kwh,
            power_avg_kw=meter.power_avg_kw,
            power_max_kw=meter.power_max_kw,
            billing_window_start=meter.billing_window_start,
            billing_window_demand_kw=meter.billing_window_demand_kw,
            tariff_band=meter.tariff_band,
            price_vnd_per_kwh=meter.price_vnd_per_kwh,
            cost_vnd=meter.cost_vnd,
            co2_kg=meter.co2_kg,
            control=ControlSummary(
                mode="advisory" if report.mode == "advisory" else "active",
                limit_kw=report.limit_kw,
                limit_source=report.limit_source,
                loads={
                    name: LoadTime(
                        on_s=seconds["on"],
                        shed_s=seconds["shed"],
                        shifted_s=seconds["shifted"],
                        state=report.states[name],
                    )
                    for name, seconds in report.seconds.items()
                },
                actions=[
                    ActionRecord.model_validate(action, from_attributes=True)
                    for action in report.actions
                ],
                demand_response=[DemandResponseOutcome.model_validate(e) for e in report.events],
            ),
            outbox_dropped=dropped,
        )
        await self._outbox.put(
            self._topics.site_summary, summary.model_dump_json(by_alias=True).encode()
        )
        log.info(
            "site summary #%d stored: %s, window demand %s kW against %.0f kW (%s), %s",
            summary.seq,
            self._site.name,
            _fmt(meter.billing_window_demand_kw, ".0f"),
            report.limit_kw,
            report.limit_source,
            count(len(report.actions), "action"),
        )

    def _interval_start(self, at: datetime) -> datetime:
        seconds = self._interval.total_seconds()
        return datetime.fromtimestamp(at.timestamp() // seconds * seconds, UTC)

    def _add(self, book: _DeviceBook, bucket: _Bucket, reading: Reading) -> None:
        bucket.samples += 1
        bucket.latest[reading.point] = reading
        if reading.quality is not Quality.GOOD:
            return
        bucket.good += 1
        role = book.roles.get(reading.point)
        if role is None or isinstance(reading.value, bool) or reading.value is None:
            return
        value = float(reading.value)
        if role == "active_power_kw":
            bucket.power_sum_kw += value
            bucket.power_count += 1
            bucket.power_max_kw = (
                value if bucket.power_max_kw is None else max(bucket.power_max_kw, value)
            )
            bucket.power_min_kw = (
                value if bucket.power_min_kw is None else min(bucket.power_min_kw, value)
            )
        elif role == "power_factor":
            bucket.power_factor = value
        elif role in ("import_energy_kwh", "export_energy_kwh"):
            history = book.energy.setdefault(role, deque(maxlen=4096))
            history.append((reading.at, value))

    def _boundary(self, book: _DeviceBook, role: str, at: datetime) -> float | None:
        """The register's value at `at`: the poll made on the boundary, which lands a few
        milliseconds after it on a real clock (within `settle_s`), else the last before it."""
        before = None
        for when, kwh in book.energy.get(role, ()):
            if when > at + self._settle:
                break
            if when >= at:
                return kwh
            before = kwh
        return before

    def _delta(
        self,
        book: _DeviceBook,
        role: str,
        start: datetime,
        end: datetime,
    ) -> tuple[float | None, float | None, float | None]:
        first, last = self._boundary(book, role, start), self._boundary(book, role, end)
        if first is None or last is None:
            return None, first, last
        if last < first:
            log.warning(
                "%s: %s went backwards (%.3f -> %.3f kWh): meter reset or replaced",
                book.device.name,
                role,
                first,
                last,
            )
            return None, first, last
        return last - first, first, last

    def _summarise(self, book: _DeviceBook, start: datetime, end: datetime) -> DeviceSummary:
        bucket = book.buckets.pop(start, _Bucket())
        for stale in [s for s in book.buckets if s < start]:
            del book.buckets[stale]
        imported, first, last = self._delta(book, "import_energy_kwh", start, end)
        exported, _, _ = self._delta(book, "export_energy_kwh", start, end)
        window_start = datetime.fromtimestamp(
            start.timestamp() // self._window_s * self._window_s, UTC
        )
        if book.window is None or book.window[0] != window_start:
            book.window = (window_start, first if start == window_start else None)
        hours = (end - window_start).total_seconds() / 3600
        window_kwh = None if book.window[1] is None or last is None else last - book.window[1]
        band, price = price_at(self._tariff, start, self._site.timezone)
        for history in book.energy.values():
            # Keep only what the next boundary can still need: the last reading at or
            # before `end`, and everything after it.
            while len(history) > 1 and history[1][0] <= end:
                history.popleft()
        return DeviceSummary(
            park=self._site.park,
            site=self._site.name,
            device=book.device.name,
            model=book.device.model,
            seq=self._seq,
            interval_start=start,
            interval_end=end,
            energy_import_kwh=imported,
            energy_export_kwh=exported,
            energy_import_start_kwh=first,
            energy_import_end_kwh=last,
            power_avg_kw=bucket.power_sum_kw / bucket.power_count if bucket.power_count else None,
            power_max_kw=bucket.power_max_kw,
            power_min_kw=bucket.power_min_kw,
            billing_window_start=window_start,
            billing_window_demand_kw=window_kwh / hours if window_kwh is not None else None,
            tariff_band=band,
            price_vnd_per_kwh=price,
            cost_vnd=imported * price if imported is not None else None,
            co2_kg=imported * self._co2_per_kwh if imported is not None else None,
            power_factor=bucket.power_factor,
            samples=bucket.samples,
            good_ratio=bucket.good / bucket.samples if bucket.samples else None,
            latest={
                point.split("/", 1)[1]: LatestValue(value=r.value, quality=r.quality.value, at=r.at)
                for point, r in sorted(bucket.latest.items())
            },
        )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
