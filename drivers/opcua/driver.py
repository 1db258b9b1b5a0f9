"""OPC UA driver: one device (a server) per driver, read in groups or by subscription.

In `read` mode each poll group is one Read service call. In `subscribe` mode the points are
monitored items of one subscription per interval (with the deadband asked of the server), and
each poll tick takes the latest notified value of every point, after a cheap keep-alive read:
a session that stopped answering is dropped and, on the new session after the reconnect, the
subscriptions are created again. A node that is bad or gone marks only its own point bad.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Self

from drivers.base import DeviceUnavailable, PollGroup, WriteFailed, WriteRefused
from edge_agent.clock import Clock
from edge_agent.model import PointId, Quality, Reading, Value

from .config import OpcUaDevice, OpcUaPoint
from .session import Sample, Session, UaStatusCodeError

__all__ = ["OpcUaDriver"]

log = logging.getLogger(__name__)


class OpcUaDriver:
    def __init__(self, device: OpcUaDevice, clock: Clock) -> None:
        self._device = device
        self._clock = clock
        self._session: Session | None = None
        by_interval: dict[float, list[str]] = {}
        for name, point in device.points.items():
            if point.method is None:
                interval = point.poll_interval_s or device.poll_interval_s
                by_interval.setdefault(interval, []).append(name)
        self._groups = [
            PollGroup(device.name, interval, tuple(f"{device.name}/{n}" for n in names))
            for interval, names in sorted(by_interval.items())
        ]
        self._bad_logged: set[str] = set()
        self._node_ids: dict[str, str | None] = {}
        """Point name -> node id on the current session (browse paths resolved at connect)."""

    @property
    def name(self) -> str:
        return self._device.name

    @property
    def devices(self) -> Sequence[str]:
        return [self._device.name]

    def _where(self, point: str, node_id: object) -> dict[str, object]:
        """Log fields that say where the value is (see edge_agent/ops/logs.py)."""
        fields: dict[str, object] = {
            "device": self._device.name,
            "point": point,
            "endpoint": self._device.endpoint,
        }
        if node_id is not None:
            fields["node_id"] = str(node_id)
        return fields

    def poll_groups(self) -> Sequence[PollGroup]:
        return self._groups

    async def __aenter__(self) -> Self:
        session = Session(self._device, self._clock)
        await session.open()
        try:
            self._node_ids = {}
            for name, point in self._device.points.items():
                if point.browse_path is None:
                    self._node_ids[name] = point.node_id
                    continue
                self._node_ids[name] = await session.resolve(point.browse_path)
                if self._node_ids[name] is None:
                    log.warning(
                        "%s %s: browse path %s not found on the server",
                        self._device.name,
                        name,
                        point.browse_path,
                        extra=self._where(name, None),
                    )
            if self._device.mode == "subscribe":
                for group in self._groups:
                    names = [p.split("/", 1)[1] for p in group.points]
                    nodes = {n: self._node_ids[n] for n in names if self._node_ids[n]}
                    deadbands = {}
                    for name, node in nodes.items():
                        point = self._device.points[name]
                        if point.deadband:
                            deadbands[str(node)] = (point.deadband, 1)
                        elif point.deadband_pct:
                            deadbands[str(node)] = (point.deadband_pct, 2)
                    await session.subscribe(
                        [str(n) for n in nodes.values()],
                        group.interval_s,
                        self._device.queue_size,
                        deadbands,
                    )
        except BaseException:
            await session.close()
            raise
        self._session = session
        return self

    async def __aexit__(self, *exc: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _live(self) -> Session:
        if self._session is None:
            raise DeviceUnavailable(f"{self._device.endpoint}: not connected")
        return self._session

    async def read(self, group: PollGroup, at: datetime) -> list[Reading]:
        session = self._live()
        names = [p.split("/", 1)[1] for p in group.points]
        found = [(n, node) for n in names if (node := self._node_ids.get(n))]
        by_name: dict[str, Sample | None] = {}
        if self._device.mode == "subscribe":
            await session.keepalive()
            by_name = {n: session.latest.get(node) for n, node in found}
        elif found:
            samples = await session.read([node for _, node in found])
            by_name = dict(zip([n for n, _ in found], samples, strict=True))
        missing = Sample(None, False, "BadNoMatch: browse path not found", None)
        samples_in_order = [
            by_name.get(n, missing) if self._node_ids.get(n) else missing for n in names
        ]
        return [
            self._reading(name, sample, at)
            for name, sample in zip(names, samples_in_order, strict=True)
        ]

    def _reading(self, name: str, sample: Sample | None, at: datetime) -> Reading:
        point_id = f"{self._device.name}/{name}"
        point = self._device.points[name]
        if sample is None:
            return Reading.bad(point_id, at, "no value notified yet")
        if not sample.good:
            if point_id not in self._bad_logged:  # once per point, not every poll
                self._bad_logged.add(point_id)
                log.warning(
                    "%s %s (%s): %s",
                    self._device.name,
                    name,
                    point.node_id,
                    sample.status,
                    extra=self._where(name, point.node_id),
                )
            return Reading(point_id, None, Quality.BAD, at, sample.status, sample.source_at)
        self._bad_logged.discard(point_id)
        value = sample.value
        if isinstance(value, bool):
            return Reading(point_id, value, Quality.GOOD, at, None, sample.source_at)
        if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
            return Reading.bad(point_id, at, f"not a number: {value!r}")
        engineering = (
            value * point.scale + point.offset if (point.scale != 1 or point.offset != 0) else value
        )
        return Reading(point_id, engineering, Quality.GOOD, at, None, sample.source_at)

    async def write(self, point_id: PointId, value: Value) -> None:
        device_name, _, name = point_id.partition("/")
        point = self._device.points.get(name) if device_name == self._device.name else None
        if point is None:
            raise WriteRefused(f"{point_id}: no such point on {self._device.name}")
        raw = _checked(point_id, point, value)
        session = self._live()
        node = point.node_id if point.method is not None else self._node_ids.get(name)
        if node is None:
            raise WriteFailed(f"{point_id}: browse path {point.browse_path} not found")
        try:
            if point.method is not None:
                await session.call(node, point.method, raw)
            else:
                await session.write(node, raw)
        except UaStatusCodeError as exc:
            raise WriteFailed(f"{point_id}: refused by the server: {exc}") from None
        log.debug(  # the guard logs each action at INFO, with its reason
            "write %s %s (%s): %s%s",
            self._device.name,
            name,
            point.node_id,
            value,
            f" via method {point.method}" if point.method else "",
            extra=self._where(name, point.node_id),
        )


def _checked(point_id: PointId, point: OpcUaPoint, value: Value) -> float | bool:
    """The raw value to send, after every check that must pass before anything is sent."""
    if not point.writable:
        raise WriteRefused(f"{point_id} is not declared writable")
    if isinstance(value, bool):
        return value
    if not math.isfinite(value):
        raise WriteRefused(f"{point_id} needs a number; {value!r} is not")
    if (point.min is not None and value < point.min) or (
        point.max is not None and value > point.max
    ):
        raise WriteRefused(
            f"{point_id}: {value:g} is outside its declared range {point.min} to {point.max}"
        )
    return (value - point.offset) / point.scale
