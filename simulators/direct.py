"""Plant models read and written in-process, behind the agent's own driver seam.

The park bench runs its main day over the real protocol stacks. Its baselines (no control, a
classic limiter, the agent again for comparison) need the same physics, seed and agent code
several times over, and the protocol stacks would multiply the run time for no new
information: this driver stands in for them. It honours the same contract (readings stamped
with the poll time, BAD when the device is silenced, writes only to writable points) so the
agent cannot tell, and the figures of both paths can be compared in one report.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Self

from drivers.base import DeviceUnavailable, PollGroup, WriteRefused
from edge_agent.config.schema import Device
from edge_agent.model import PointId, Reading, Value

__all__ = ["DirectDevice", "DirectDriver"]


@dataclass
class DirectDevice:
    """One device's values now, and where its writes go."""

    values: Callable[[], Mapping[str, Value]]
    inputs: dict[str, Value] | None = None
    """The machine's inputs (None: a meter, nothing to write)."""
    written: Callable[[str], None] | None = None
    """Told of each write, as the machine's PLC would be (its watchdog)."""


class DirectDriver:
    def __init__(
        self,
        devices: Sequence[Device],
        plant: Mapping[str, DirectDevice],
        *,
        silent: Collection[str] = (),
    ) -> None:
        """`silent`: the names of devices that do not answer now (a live collection a
        scenario's events change)."""
        self._devices = {d.name: d for d in devices}
        self._plant = plant
        self._silent = silent

    @property
    def name(self) -> str:
        return "direct:" + ",".join(self._devices)

    @property
    def devices(self) -> Sequence[str]:
        return list(self._devices)

    def poll_groups(self) -> Sequence[PollGroup]:
        return [
            PollGroup(d.name, d.poll_interval_s, tuple(f"{d.name}/{p}" for p in d.points))
            for d in self._devices.values()
        ]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self, group: PollGroup, at: datetime) -> list[Reading]:
        device = self._plant[group.device]
        if group.device in self._silent:
            raise DeviceUnavailable(f"{group.device}: no answer", device=group.device)
        values = device.values()
        readings = []
        for point in group.points:
            name = point.partition("/")[2]
            value = values.get(name)
            readings.append(
                Reading.bad(point, at, "no such value")
                if value is None
                else Reading.good(point, value, at)
            )
        return readings

    async def write(self, point: PointId, value: Value) -> None:
        device_name, _, name = point.partition("/")
        config = self._devices.get(device_name)
        spec = config.points.get(name) if config is not None else None
        device = self._plant.get(device_name)
        if spec is None or not spec.writable or device is None or device.inputs is None:
            raise WriteRefused(f"{point}: not a writable point")
        if device_name in self._silent:
            raise DeviceUnavailable(f"{device_name}: no answer", device=device_name)
        device.inputs[name] = value
        if device.written is not None:
            device.written(name)
