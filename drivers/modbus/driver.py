"""Modbus TCP driver: planned block reads, decoded through the point's codec settings."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Self

from drivers.base import PollGroup
from edge_agent.model import PointId, Reading

from .client import ModbusExceptionReply, TcpConnection
from .codec import CodecError, decode, to_engineering
from .config import ModbusPoint, ModbusTcpDevice
from .planner import ReadRequest, plan

__all__ = ["ModbusTcpDriver", "plan_groups"]

log = logging.getLogger(__name__)


def plan_groups(device: ModbusTcpDevice) -> list[tuple[PollGroup, list[ReadRequest]]]:
    """Poll groups by interval, each with its read plan; `edge-agent check` prints these."""
    by_interval: dict[float, list[str]] = {}
    for name, point in device.points.items():
        interval = point.poll_interval_s or device.poll_interval_s
        by_interval.setdefault(interval, []).append(name)
    groups = []
    for interval in sorted(by_interval):
        names = by_interval[interval]
        requests = plan(
            (device.points[n].span(n) for n in names),
            max_registers=device.max_registers_per_read,
            max_gap=device.max_gap_registers,
        )
        ids = tuple(f"{device.name}/{n}" for n in names)
        groups.append((PollGroup(interval, ids), requests))
    return groups


class ModbusTcpDriver:
    def __init__(self, config: ModbusTcpDevice) -> None:
        self._config = config
        self._plans = plan_groups(config)
        self._connection: TcpConnection | None = None

    @property
    def device(self) -> str:
        return self._config.name

    def poll_groups(self) -> Sequence[PollGroup]:
        return [group for group, _ in self._plans]

    async def __aenter__(self) -> Self:
        connection = TcpConnection(
            self._config.host, self._config.port, timeout_s=self._config.timeout_s
        )
        await connection.connect()
        self._connection = connection
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def read(self, group: PollGroup, at: datetime) -> list[Reading]:
        assert self._connection is not None, "read() outside `async with driver`"
        requests = next(reqs for g, reqs in self._plans if g == group)
        readings: list[Reading] = []
        for request in requests:
            try:
                words = await self._connection.read(
                    request.table, request.start, request.count, self._config.unit
                )
            except ModbusExceptionReply as exc:
                log.warning(
                    "%s unit %d %s: %s", self.device, self._config.unit, request.describe(), exc
                )
                readings += [Reading.bad(self._id(s.key), at, str(exc)) for s in request.spans]
                continue
            for span in request.spans:
                point = self._config.points[span.key]
                offset = span.address - request.start
                readings.append(
                    self._decode(span.key, point, words[offset : offset + span.width], at)
                )
        return readings

    def _decode(self, name: str, point: ModbusPoint, words: list[int], at: datetime) -> Reading:
        point_id = self._id(name)
        try:
            raw = (
                bool(words[0])
                if point.table.is_bits
                else decode(words, point.type, point.byte_order)
            )
        except CodecError as exc:
            return Reading.bad(point_id, at, f"cannot decode: {exc}")
        if isinstance(raw, float) and math.isnan(raw):  # how many devices say "no value"
            return Reading.bad(point_id, at, "device returned NaN")
        return Reading.good(point_id, to_engineering(raw, point.scale, point.offset), at)

    def _id(self, name: str) -> PointId:
        return f"{self.device}/{name}"
