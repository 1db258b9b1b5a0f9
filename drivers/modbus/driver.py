"""Modbus driver for one line (a serial bus, a gateway, or one TCP device) and its units.

Requests on a line never overlap: each connection has one lock, and `pause_s` of silence is
kept between requests. Reads follow the planner's blocks; a block refused with exception 02
(illegal data address) is split until every readable point is read, and the split plan is
kept, so the refusal costs requests once, not every cycle.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Self

from drivers.base import DeviceUnavailable, PollGroup, WriteFailed, WriteRefused
from edge_agent.clock import Clock
from edge_agent.model import PointId, Quality, Reading, Value

from .client import Connection, ModbusExceptionReply, NoAnswer
from .codec import CodecError, DataType, Decoder, decoder, encode, to_engineering, to_raw
from .config import ModbusDevice, ModbusLine, ModbusPoint
from .planner import ReadRequest, Span, plan

__all__ = ["ModbusLineDriver", "plan_groups"]

log = logging.getLogger(__name__)

ILLEGAL_DATA_ADDRESS = 2
RETRY_REFUSED_EVERY = 100
"""A point refused alone with exception 02 is tried again once in this many cycles."""
SILENT_BEFORE_RECONNECT = 3
"""Unanswered requests in a row, from any unit, after which the connection itself is
suspect (a half-open TCP connection after a gateway reboot never errors by itself) and is
opened anew."""


def plan_groups(
    device: ModbusDevice, *, phase_s: float = 0.0
) -> list[tuple[PollGroup, list[ReadRequest]]]:
    """Poll groups by interval, each with its read plan; `edge-agent plan` prints these.

    A point's scale-factor point is read in every group that needs it, so a value and its
    exponent always come from the same poll.
    """
    by_interval: dict[float, list[str]] = {}
    for name, point in device.points.items():
        by_interval.setdefault(point.poll_interval_s or device.poll_interval_s, []).append(name)
    groups = []
    for interval in sorted(by_interval):
        names = by_interval[interval]
        needed = {device.points[n].scale_factor for n in names} - {None} - set(names)
        spans = [device.points[n].span(n) for n in [*names, *sorted(str(n) for n in needed)]]
        requests = plan(
            spans, max_registers=device.max_registers_per_read, max_gap=device.max_gap_registers
        )
        ids = tuple(f"{device.name}/{n}" for n in names)
        groups.append((PollGroup(device.name, interval, ids, phase_s), requests))
    return groups


@dataclass
class _Plan:
    requests: list[ReadRequest]
    refused: list[Span] = field(default_factory=list)
    """Points the device refused alone (exception 02): not read but every RETRY_REFUSED_EVERY."""
    cycles: int = 0


class _Lane:
    """One connection and the rule that requests on it are one at a time, `pause_s` apart."""

    def __init__(self, line: ModbusLine, clock: Clock) -> None:
        self.connection = Connection(line, clock)
        self.lock = asyncio.Lock()
        self._clock = clock
        self._pause = timedelta(seconds=line.pause_s)
        self._last: datetime | None = None
        self.silent = 0
        """Requests in a row that no unit answered."""

    async def wait_turn(self) -> None:
        if self._last is not None and self._pause:
            await self._clock.sleep_until(self._last + self._pause)

    def done(self) -> None:
        self._last = self._clock.now()


class ModbusLineDriver:
    def __init__(self, line: ModbusLine, devices: Sequence[ModbusDevice], clock: Clock) -> None:
        self._line = line
        self._clock = clock
        self._devices = {d.name: d for d in devices}
        self._lanes = [_Lane(line, clock) for _ in range(line.max_connections)]
        self._lane_of = {d.name: self._lanes[i % len(self._lanes)] for i, d in enumerate(devices)}
        self._plans: dict[PollGroup, _Plan] = {}
        for index, device in enumerate(devices):
            phase = device.poll_phase_s
            if phase is None:  # spread the devices of the line evenly over the interval
                phase = device.poll_interval_s * index / len(devices)
            for group, requests in plan_groups(device, phase_s=phase):
                self._plans[group] = _Plan(requests)

    @property
    def name(self) -> str:
        return self._line.name

    @property
    def devices(self) -> Sequence[str]:
        return list(self._devices)

    def poll_groups(self) -> Sequence[PollGroup]:
        return list(self._plans)

    def _where(self, device: ModbusDevice) -> dict[str, object]:
        """Log fields that say where the device is (see edge_agent/ops/logs.py)."""
        address = self._lane_of[device.name].connection.address
        return {"device": device.name, "unit": device.unit, "line": self.name, "address": address}

    def requests_per_round(self) -> int:
        """Requests one read of every group takes with the plans as learned so far."""
        return sum(len(p.requests) for p in self._plans.values())

    async def __aenter__(self) -> Self:
        try:
            for lane in self._lanes:
                await lane.connection.open()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for lane in self._lanes:
            lane.connection.close()

    # -- reading ------------------------------------------------------------------------

    async def read(self, group: PollGroup, at: datetime) -> list[Reading]:
        device = self._devices[group.device]
        state = self._plans[group]
        state.cycles += 1
        words: dict[str, list[int]] = {}
        refusals: dict[str, str] = {}
        for request in list(state.requests):
            await self._read_block(device, state, request, words, refusals)
        if state.refused and state.cycles % RETRY_REFUSED_EVERY == 0:
            for span in list(state.refused):
                await self._retry_refused(device, state, span, words, refusals)
        for span in state.refused:
            refusals.setdefault(
                span.key,
                f"exception {ILLEGAL_DATA_ADDRESS:02d} (illegal data "
                "address): not read again until retried",
            )
        return [
            self._reading(device, point.split("/", 1)[1], words, refusals, at)
            for point in group.points
        ]

    async def _read_block(
        self,
        device: ModbusDevice,
        state: _Plan,
        request: ReadRequest,
        words: dict[str, list[int]],
        refusals: dict[str, str],
    ) -> None:
        try:
            block = await self._request(device, request)
        except ModbusExceptionReply as exc:
            if exc.code == ILLEGAL_DATA_ADDRESS:
                await self._split(device, state, request, words, refusals)
                return
            log.warning(
                "%s unit %d %s: %s",
                device.name,
                device.unit,
                request.describe(),
                exc,
                extra=self._where(device),
            )
            for span in request.spans:
                refusals[span.key] = str(exc)
            return
        for span in request.spans:
            offset = span.address - request.start
            words[span.key] = block[offset : offset + span.width]

    async def _split(
        self,
        device: ModbusDevice,
        state: _Plan,
        request: ReadRequest,
        words: dict[str, list[int]],
        refusals: dict[str, str],
    ) -> None:
        """Exception 02 on a block: read its parts, and keep the parts as the new plan."""
        index = state.requests.index(request)
        if len(request.spans) == 1:
            span = request.spans[0]
            state.requests.pop(index)
            state.refused.append(span)
            refusals[span.key] = f"exception {ILLEGAL_DATA_ADDRESS:02d} (illegal data address)"
            log.warning(
                "%s unit %d: %s at %s %d is refused (exception 02, illegal data address); "
                "check the address; retried every %d polls",
                device.name,
                device.unit,
                span.key,
                span.table.value,
                span.address,
                RETRY_REFUSED_EVERY,
                extra=self._where(device),
            )
            return
        middle = len(request.spans) // 2
        halves = [
            plan(
                request.spans[:middle],
                max_gap=device.max_gap_registers,
                max_registers=device.max_registers_per_read,
            ),
            plan(
                request.spans[middle:],
                max_gap=device.max_gap_registers,
                max_registers=device.max_registers_per_read,
            ),
        ]
        parts = [r for half in halves for r in half]
        state.requests[index : index + 1] = parts
        log.info(
            "%s unit %d: %s refused with exception 02; split into %d requests",
            device.name,
            device.unit,
            request.describe(),
            len(parts),
            extra=self._where(device),
        )
        for part in parts:
            await self._read_block(device, state, part, words, refusals)

    async def _retry_refused(
        self,
        device: ModbusDevice,
        state: _Plan,
        span: Span,
        words: dict[str, list[int]],
        refusals: dict[str, str],
    ) -> None:
        single = ReadRequest(span.table, span.address, span.width, (span,))
        try:
            block = await self._request(device, single)
        except ModbusExceptionReply:
            return
        state.refused.remove(span)
        state.requests.append(single)
        words[span.key] = block
        log.info(
            "%s unit %d: %s is readable again",
            device.name,
            device.unit,
            span.key,
            extra=self._where(device),
        )

    async def _request(self, device: ModbusDevice, request: ReadRequest) -> list[int]:
        lane = self._lane_of[device.name]
        async with lane.lock:
            await lane.wait_turn()
            try:
                words = await lane.connection.read(
                    request.table, request.start, request.count, device.unit
                )
            except NoAnswer as exc:
                lane.silent += 1
                where = f"{device.name} unit {device.unit} {request.describe()}: {exc}"
                if lane.silent >= SILENT_BEFORE_RECONNECT:
                    lane.connection.close()
                    raise DeviceUnavailable(
                        f"{where}; {lane.silent} requests in a row unanswered on "
                        f"{lane.connection.address}: reconnecting"
                    ) from None
                raise DeviceUnavailable(where, device=device.name) from None
            except ModbusExceptionReply:
                lane.silent = 0
                raise
            finally:
                lane.done()
            lane.silent = 0
            return words

    def _reading(
        self,
        device: ModbusDevice,
        name: str,
        words: dict[str, list[int]],
        refusals: dict[str, str],
        at: datetime,
    ) -> Reading:
        point_id = f"{device.name}/{name}"
        if name in refusals:
            return Reading(point_id, None, Quality.BAD, at, refusals[name])
        point = device.points[name]
        try:
            raw = _decoder(point)(words[name])
            if point.scale_factor is not None:
                sf_words = words.get(point.scale_factor)
                if sf_words is None:
                    return Reading.bad(point_id, at, f"scale factor {point.scale_factor} unread")
                exponent = int(_decoder(device.points[point.scale_factor])(sf_words))
                if exponent and not isinstance(raw, bool):
                    raw = raw * 10.0**exponent
        except CodecError as exc:
            return Reading.bad(point_id, at, f"cannot decode: {exc}")
        if isinstance(raw, float) and math.isnan(raw):  # how many devices say "no value"
            return Reading.bad(point_id, at, "device returned NaN")
        return Reading(point_id, to_engineering(raw, point.scale, point.offset), Quality.GOOD, at)

    # -- writing ------------------------------------------------------------------------

    async def write(self, point_id: PointId, value: Value) -> None:
        device_name, _, name = point_id.partition("/")
        device = self._devices.get(device_name)
        point = device.points.get(name) if device is not None else None
        if device is None or point is None:
            raise WriteRefused(f"{point_id}: no such point on line {self.name}")
        words = self._encode_write(point_id, point, value)
        function = point.write_function or (
            5 if point.table.is_bits else 6 if len(words) == 1 else 16
        )
        old = await self._read_point(device, name, point)
        lane = self._lane_of[device.name]
        async with lane.lock:
            await lane.wait_turn()
            try:
                await lane.connection.write(function, point.address, words, device.unit)
            except NoAnswer as exc:
                raise WriteFailed(f"{point_id}: {exc}") from None
            except ModbusExceptionReply as exc:
                raise WriteFailed(f"{point_id}: refused by the device: {exc}") from None
            finally:
                lane.done()
        log.debug(  # the guard logs each action at INFO, with its reason
            "write %s unit %d %s %d (%s): %s -> %s (FC%02d %s)",
            device.name,
            device.unit,
            point.table.value,
            point.address,
            name,
            old,
            value,
            function,
            " ".join(f"{w:04X}" for w in words),
            extra=self._where(device),
        )
        if point.verify_write:
            back = await self._read_point(device, name, point)
            if back is None or not _same(back, value, point):
                raise WriteFailed(f"{point_id}: wrote {value}, read back {back}")

    @staticmethod
    def _encode_write(point_id: PointId, point: ModbusPoint, value: Value) -> list[int]:
        """The registers to send, after every check that must pass before anything is sent."""
        if not point.writable:
            raise WriteRefused(f"{point_id} is not declared writable")
        if point.type is DataType.BOOL or point.table.is_bits:
            if not isinstance(value, bool) and value not in (0, 1):
                raise WriteRefused(f"{point_id} is a bool; {value!r} is not")
            return [int(bool(value))]
        if isinstance(value, bool) or not math.isfinite(value):
            raise WriteRefused(f"{point_id} needs a number; {value!r} is not")
        low, high = point.min, point.max  # the config requires both for a writable number
        if low is None or high is None or not low <= value <= high:
            raise WriteRefused(
                f"{point_id}: {value:g} is outside its declared range {low} to {high}"
            )
        try:
            return encode(
                to_raw(value, point.type, point.scale, point.offset), point.type, point.byte_order
            )
        except CodecError as exc:
            raise WriteRefused(f"{point_id}: {exc}") from None

    async def _read_point(
        self, device: ModbusDevice, name: str, point: ModbusPoint
    ) -> Value | None:
        span = point.span(name)
        try:
            block = await self._request(
                device, ReadRequest(span.table, span.address, span.width, (span,))
            )
        except ModbusExceptionReply:
            return None
        reading = self._reading(device, name, {name: block}, {}, self._clock.now())
        return reading.value


def _decoder(point: ModbusPoint) -> Decoder:
    return _bit if point.table.is_bits else decoder(point.type, point.byte_order)


def _bit(words: Sequence[int]) -> bool:
    return bool(words[0])


def _same(back: Value, wanted: Value, point: ModbusPoint) -> bool:
    if isinstance(wanted, bool) or isinstance(back, bool):
        return bool(back) == bool(wanted)
    return abs(float(back) - float(wanted)) <= abs(point.scale) / 2 + 1e-9
