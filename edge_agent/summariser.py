"""Interval accounting: readings in, one summary per device per interval out.

Intervals are aligned to multiples of their length since the epoch, so every agent of a
park closes the same intervals at the same instants. The summary for [start, end) is built
`settle_s` after `end`, when the poll at `end` has surely landed:

- power statistics use the good readings stamped in [start, end);
- interval energy is the energy register's boundary value at `end` minus that at `start`,
  where a boundary value is the first good reading within `settle_s` after the boundary (the
  poll made on it), else the last one before it if it is not stale (older than the point's
  `stale_after_s`, three poll intervals by default, and at least two). Register deltas (not
  integrated power) are what the utility bills, and they lose nothing when a poll fails.

Energy that is not known is None, never 0.0, and the summary's `reason` says why. After a gap
without good register readings (a meter that was down, an agent that was not running), the
register's advance across the gap is reported as the gap's (`gap_start`, `gap_end`,
`gap_energy_import_kwh`), in the summary of the interval where readings come back, and in no
interval's energy or demand.

No interval goes unsummarised, silently, at a stop: `stop()` summarises the interval that has
ended but is still in its settle time at once, with the readings taken so far; and `run()`
first summarises, as `agent not running`, every interval between the outbox's record of the
last one summarised (kept with the messages, so it survives a SIGKILL) and the first this
process closes. The first interval this process closes began before it started: its energy
is None (`partial interval`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .clock import Clock, next_boundary
from .config.schema import Device, SiteConfig, stale_age_s
from .control.controller import ControlReport
from .energy.tariff import price_at
from .model import Quality, Reading, count
from .northbound.outbox import Outbox, Payload
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

__all__ = ["NOT_RUNNING", "Summariser"]

log = logging.getLogger(__name__)

NOT_RUNNING = "agent not running"
"""The reason of an interval no process summarised."""

_BACKFILL_BATCH = 500
"""Summaries of missed intervals stored per outbox transaction."""

_IMPORT, _EXPORT = "import_energy_kwh", "export_energy_kwh"

Summary = DeviceSummary | SiteSummary


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
    max_age: Mapping[str, timedelta] = field(default_factory=dict)
    """role -> how old the last reading before a boundary may be to stand for it."""
    buckets: dict[datetime, _Bucket] = field(default_factory=dict)
    energy: dict[str, deque[tuple[datetime, float]]] = field(default_factory=dict)
    """role -> recent good energy readings (time, kWh), oldest first."""
    window: tuple[datetime, float | None] | None = None
    """The billing window now open: its start, and the import register's value there."""
    since: datetime | None = None
    """When this process began to read the device (its start, or the reload that added the
    device): an interval that began earlier is partial."""
    anchor: tuple[datetime, float] | None = None
    """The last boundary with a good import reading, and the reading: a gap starts there."""


@dataclass(frozen=True, slots=True)
class _Energy:
    """One interval's register figures."""

    imported: float | None
    exported: float | None
    first: float | None
    last: float | None
    reason: str | None
    gap: tuple[datetime, datetime, float | None] | None
    """(gap_start, gap_end, the import register's advance across it)"""


class Summariser:
    def __init__(self, config: SiteConfig, clock: Clock, outbox: Outbox) -> None:
        self._clock = clock
        self._outbox = outbox
        self._interval = timedelta(seconds=config.summary.interval_s)
        self._settle = timedelta(seconds=config.summary.settle_s)
        self._topics = Topics(config.broker.topic_prefix, config.site.park, config.site.name)
        self._site = config.site
        self._tariff = config.tariff
        self._co2_per_kwh = config.emissions.grid_kg_co2_per_kwh
        self._window_s = config.summary.billing_window_s
        self._backfill_max = max(1, config.outbox.max_messages // 2)
        """Summaries of missed intervals at most: half the outbox, which must hold the rest."""
        self.control: Callable[[], ControlReport] | None = None
        """Set by the agent when it controls loads: the site summary then carries control."""
        self._meter = config.control.meter if config.control is not None else None
        self._books: dict[str, _DeviceBook] = {}
        self._device_of: dict[str, _DeviceBook] = {}
        self._started: datetime | None = None
        self._stopping = False
        self._sleeping: asyncio.Task[object] | None = None
        self.apply(config.devices)

    def apply(self, devices: Sequence[Device]) -> None:
        """Summarise these devices from now on (a reload): a removed device's open interval
        is dropped, an added one is summarised from the next close (that interval partial),
        and a changed one keeps its interval and energy history under its new points and
        roles."""
        books = {}
        for device in devices:
            roles = {f"{device.name}/{n}": p.role for n, p in device.points.items() if p.role}
            book = self._books.get(device.name) or _DeviceBook(device, roles)
            if book.since is None and self._started is not None:
                book.since = self._clock.now()
            book.device, book.roles = device, roles
            book.max_age = _max_ages(device)
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
        """Summarise the intervals no process summarised since the outbox's record, then
        close each interval `settle_s` after it ends, until `stop()` (or cancelled)."""
        now = self._clock.now()
        self._started = now
        for book in self._books.values():
            book.since = book.since or now
        end = next_boundary(now, self._interval.total_seconds())
        await self._resume(end - self._interval)
        while True:
            woke = await self._sleep_until(end + self._settle)
            if not woke:
                if self._clock.now() < end:
                    return
                log.info(
                    "stopping: summarising %s-%s now, %.1f s before its settle time ends, "
                    "with the readings taken",
                    f"{end - self._interval:%H:%M:%S}",
                    f"{end:%H:%M:%S}",
                    (end + self._settle - self._clock.now()).total_seconds(),
                )
            await self.close_interval(end - self._interval, end)
            if not woke:
                return
            end += self._interval

    def stop(self) -> None:
        """Finish: if an interval has ended and waits for its settle time, `run()` summarises
        it at once, with the readings taken so far (it does not wait for the rest of
        `settle_s`), and returns; a summary being stored is finished first."""
        self._stopping = True
        if self._sleeping is not None:
            self._sleeping.cancel()

    async def _sleep_until(self, deadline: datetime) -> bool:
        """Sleep on the clock in this task (which the clock tracks); False if `stop()` came
        first."""
        if self._stopping:
            return False
        task = asyncio.current_task()
        self._sleeping = task
        try:
            await self._clock.sleep_until(deadline)
        except asyncio.CancelledError:
            # stop() cancels only this sleep; any other cancellation goes on up.
            if not self._stopping or task is None or task.cancelling() > 1:
                raise
            task.uncancel()
            return False
        finally:
            self._sleeping = None
        return True

    async def close_interval(self, start: datetime, end: datetime) -> None:
        await self._store(self._interval_summaries(start, end), end)

    async def _resume(self, first: datetime) -> None:
        """Summarise as missing every interval from the outbox's record up to `first`, the
        start of the first interval this process closes."""
        record = await self._outbox.last_summarised()
        if record is None:
            return
        self._restore(record.state)
        seconds = self._interval.total_seconds()
        start = datetime.fromtimestamp(
            math.ceil(record.interval_end.timestamp() / seconds) * seconds, UTC
        )
        if start > first:
            log.warning(
                "the outbox records intervals summarised up to %s, after this start (%s): "
                "has the clock gone back?",
                record.interval_end.isoformat(),
                self._clock.now().isoformat(),
            )
            return
        missed = round((first - start) / self._interval)
        if not missed:
            return
        per_interval = len(self._books) + (1 if self._site_summary_due() else 0)
        kept = min(missed, max(1, self._backfill_max // max(1, per_interval)))
        log.warning(
            "no summary was made for %s from %s to %s (the agent was stopped, or killed "
            "before it closed them): %s summarised now, with null energy and reason `%s`%s",
            count(missed, "interval"),
            f"{start:%Y-%m-%d %H:%M:%S}",
            f"{first:%Y-%m-%d %H:%M:%S}",
            "all" if kept == missed else f"the last {kept}",
            NOT_RUNNING,
            "" if kept == missed else "; the outbox could not hold the others",
        )
        skipped = missed - kept
        at = start + skipped * self._interval
        batch: list[tuple[str, Summary]] = []
        while at < first:
            reason = NOT_RUNNING
            if skipped and not batch and at == start + skipped * self._interval:
                reason = (
                    f"{NOT_RUNNING}; the {count(skipped, 'interval')} before this one from "
                    f"{_iso(start)} have no summary: more than the outbox holds"
                )
            batch.extend(self._interval_summaries(at, at + self._interval, missing=reason))
            at += self._interval
            if len(batch) >= _BACKFILL_BATCH or at >= first:
                await self._store(batch, at, each=False)
                batch = []

    def _site_summary_due(self) -> bool:
        return self.control is not None and self._meter in self._books

    def _interval_summaries(
        self, start: datetime, end: datetime, *, missing: str | None = None
    ) -> list[tuple[str, Summary]]:
        """The interval's summaries, not yet numbered; `missing`: no process read it."""
        summaries: list[tuple[str, Summary]] = []
        meter: DeviceSummary | None = None
        for book in self._books.values():
            summary = self._summarise(book, start, end, missing)
            if book.device.name == self._meter:
                meter = summary
            summaries.append((self._topics.device_summary(book.device.name), summary))
        if self.control is not None and meter is not None:
            report = None if missing else self.control()
            summaries.append((self._topics.site_summary, _site_summary(meter, report)))
        return summaries

    async def _store(
        self, summaries: list[tuple[str, Summary]], end: datetime, *, each: bool = True
    ) -> None:
        """Number and store the summaries at once, with the record that intervals up to
        `end` are summarised."""
        seqs = await self._outbox.put_summaries(
            [(topic, _payload(summary)) for topic, summary in summaries],
            interval_end=end,
            state=self._state(),
        )
        if each:
            for seq, (_, summary) in zip(seqs, summaries, strict=True):
                _log_stored(seq, summary)

    def _state(self) -> str:
        """What the next process needs: each device's last good import boundary."""
        anchors = {
            name: [book.anchor[0].timestamp(), book.anchor[1]]
            for name, book in self._books.items()
            if book.anchor is not None
        }
        return json.dumps({"import": anchors}, separators=(",", ":"))

    def _restore(self, state: str) -> None:
        try:
            anchors = json.loads(state)["import"] if state else {}
            for name, (at, kwh) in anchors.items():
                if name in self._books:
                    book = self._books[name]
                    book.anchor = (datetime.fromtimestamp(float(at), UTC), float(kwh))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("the outbox's summariser state is unreadable (%s); starting afresh", exc)

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
        elif role in (_IMPORT, _EXPORT):
            history = book.energy.setdefault(role, deque(maxlen=4096))
            history.append((reading.at, value))

    def _boundary(self, book: _DeviceBook, role: str, at: datetime) -> float | None:
        """The register's value at `at`: the poll made on the boundary, which lands a few
        milliseconds after it on a real clock (within `settle_s`), else the last before it
        unless that is stale; None when there is neither (the meter was down)."""
        before = None
        for when, kwh in book.energy.get(role, ()):
            if when > at + self._settle:
                break
            if when >= at:
                return kwh
            before = (when, kwh)
        if before is None or at - before[0] > book.max_age.get(role, self._interval):
            return None
        return before[1]

    def _delta(
        self, book: _DeviceBook, role: str, start: datetime, end: datetime, *, partial: bool
    ) -> tuple[float | None, float | None, float | None]:
        first = None if partial else self._boundary(book, role, start)
        last = self._boundary(book, role, end)
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

    def _energy(
        self, book: _DeviceBook, start: datetime, end: datetime, missing: str | None
    ) -> _Energy:
        if missing is not None:
            return _Energy(None, None, None, None, missing, None)
        partial = book.since is not None and book.since > start
        imported, first, last = self._delta(book, _IMPORT, start, end, partial=partial)
        exported, _, _ = self._delta(book, _EXPORT, start, end, partial=partial)
        reason = None if imported is not None else self._why(book, first, last, partial)
        gap = None
        good = (start, first) if first is not None else (end, last) if last is not None else None
        if good is not None and book.anchor is not None and book.anchor[0] < good[0]:
            advance = good[1] - book.anchor[1]
            if advance < 0:
                log.warning(
                    "%s: the import register went backwards across the gap from %s "
                    "(%.3f -> %.3f kWh): meter reset or replaced",
                    book.device.name,
                    _iso(book.anchor[0]),
                    book.anchor[1],
                    good[1],
                )
            gap = (book.anchor[0], good[0], advance if advance >= 0 else None)
        if last is not None:
            book.anchor = (end, last)
        elif good is not None:
            book.anchor = good
        return _Energy(imported, exported, first, last, reason, gap)

    def _why(
        self, book: _DeviceBook, first: float | None, last: float | None, partial: bool
    ) -> str:
        """Why the interval's import energy is None."""
        if _IMPORT not in book.roles.values():
            return "no import energy point"
        if partial:
            who = "the agent started" if book.since == self._started else "the device was added"
            return f"partial interval: {who} at {_iso(book.since)}"
        if first is None and last is None:
            return "no good reading of the import register at either boundary"
        if first is None:
            return "no good reading of the import register at the start boundary"
        if last is None:
            return "no good reading of the import register at the end boundary"
        return "the import register went backwards (reset or replaced)"

    def _summarise(
        self, book: _DeviceBook, start: datetime, end: datetime, missing: str | None
    ) -> DeviceSummary:
        bucket = book.buckets.pop(start, _Bucket())
        for stale in [s for s in book.buckets if s < start]:
            del book.buckets[stale]
        energy = self._energy(book, start, end, missing)
        imported, first, last = energy.imported, energy.first, energy.last
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
        gap_start, gap_end, gap_kwh = energy.gap or (None, None, None)
        return DeviceSummary(
            park=self._site.park,
            site=self._site.name,
            device=book.device.name,
            model=book.device.model,
            seq=0,  # given as it is stored
            interval_start=start,
            interval_end=end,
            energy_import_kwh=imported,
            energy_export_kwh=energy.exported,
            energy_import_start_kwh=first,
            energy_import_end_kwh=last,
            reason=energy.reason,
            gap_start=gap_start,
            gap_end=gap_end,
            gap_energy_import_kwh=gap_kwh,
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


def _max_ages(device: Device) -> dict[str, timedelta]:
    """How old a register reading may be to stand for a boundary: the point's stale age, and
    at least two of its poll intervals (one poll missed on the boundary is no gap)."""
    ages: dict[str, timedelta] = {}
    for name, point in device.points.items():
        if point.role in (_IMPORT, _EXPORT):
            interval = point.poll_interval_s or device.poll_interval_s
            age = timedelta(seconds=max(stale_age_s(device, name), 2 * interval))
            ages[point.role] = max(age, ages.get(point.role, age))
    return ages


def _site_summary(meter: DeviceSummary, report: ControlReport | None) -> SiteSummary:
    """The site's summary from its meter's and control's report (None: nothing ran)."""
    return SiteSummary(
        park=meter.park,
        site=meter.site,
        seq=0,  # given as it is stored
        interval_start=meter.interval_start,
        interval_end=meter.interval_end,
        meter=meter.device,
        energy_import_kwh=meter.energy_import_kwh,
        reason=meter.reason,
        gap_start=meter.gap_start,
        gap_end=meter.gap_end,
        gap_energy_import_kwh=meter.gap_energy_import_kwh,
        power_avg_kw=meter.power_avg_kw,
        power_max_kw=meter.power_max_kw,
        billing_window_start=meter.billing_window_start,
        billing_window_demand_kw=meter.billing_window_demand_kw,
        tariff_band=meter.tariff_band,
        price_vnd_per_kwh=meter.price_vnd_per_kwh,
        cost_vnd=meter.cost_vnd,
        co2_kg=meter.co2_kg,
        control=None
        if report is None
        else ControlSummary(
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
    )


def _payload(summary: Summary) -> Payload:
    def make(seq: int, dropped: int) -> bytes:
        numbered = summary.model_copy(update={"seq": seq, "outbox_dropped": dropped})
        return numbered.model_dump_json(by_alias=True).encode()

    return make


def _log_stored(seq: int, summary: Summary) -> None:
    span = f"{summary.interval_start:%H:%M:%S}-{summary.interval_end:%H:%M:%S}"
    if isinstance(summary, DeviceSummary):
        log.info(
            "summary #%d stored: %s/%s %s: %s kWh, average %s kW, peak %s kW, %s good%s",
            seq,
            summary.site,
            summary.device,
            span,
            _fmt(summary.energy_import_kwh, ".3f"),
            _fmt(summary.power_avg_kw, ".1f"),
            _fmt(summary.power_max_kw, ".1f"),
            _fmt(summary.good_ratio, ".0%"),
            f" ({summary.reason})" if summary.reason else "",
        )
        return
    control = summary.control
    log.info(
        "site summary #%d stored: %s, window demand %s kW against %s, %s",
        seq,
        summary.site,
        _fmt(summary.billing_window_demand_kw, ".0f"),
        "-" if control is None else f"{control.limit_kw:.0f} kW ({control.limit_source})",
        "-" if control is None else count(len(control.actions), "action"),
    )


def _iso(at: datetime | None) -> str:
    if at is None:
        return "-"
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
