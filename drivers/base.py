"""The seam between the agent and a protocol: what every driver provides and may raise.

A driver serves one connection or line and the devices on it (a Modbus gateway or RS-485
bus serves many units; an OPC UA server is one device). The poller schedules its groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Self

from edge_agent.model import PointId, Reading, Value

__all__ = [
    "DeviceConfigError",
    "DeviceUnavailable",
    "Driver",
    "PollGroup",
    "WriteFailed",
    "WriteRefused",
]


class DeviceUnavailable(Exception):
    """Retry later with backoff. With `device` set, only that device did not answer and the
    connection is fine; without it, the connection is gone for every device on it."""

    def __init__(self, message: str, *, device: str | None = None) -> None:
        super().__init__(message)
        self.device = device


class DeviceConfigError(Exception):
    """The device answers, but not as configured: retrying will not help; fix the config."""


class WriteRefused(Exception):
    """The write breaks a declared limit (not writable, out of range); nothing was sent."""


class WriteFailed(Exception):
    """The write was sent but not done: no answer, an exception reply, or a wrong read-back."""


@dataclass(frozen=True, slots=True)
class PollGroup:
    """Points of one device read together at one interval; the driver plans each group."""

    device: str
    interval_s: float
    points: tuple[PointId, ...]
    phase_s: float = 0.0
    """Offset of the group's ticks from the interval's epoch-aligned grid."""


class Driver(Protocol):
    """One connection or line and its devices. A fault never escapes as anything but the
    exceptions above."""

    @property
    def name(self) -> str:
        """The line or device name, for logs."""
        ...

    @property
    def devices(self) -> Sequence[str]:
        """The names, from the site file, of the devices this driver serves."""
        ...

    def poll_groups(self) -> Sequence[PollGroup]:
        """The groups to poll, each at its interval and phase; fixed for the driver's life."""
        ...

    async def __aenter__(self) -> Self:
        """Connect. Raises DeviceUnavailable or DeviceConfigError."""
        ...

    async def __aexit__(self, *exc: object) -> None:
        """Disconnect within a bounded time; never raises."""
        ...

    async def read(self, group: PollGroup, at: datetime) -> list[Reading]:
        """One reading per point of `group`, stamped `at`. A point the device refuses is BAD;
        a unit or connection that does not answer raises DeviceUnavailable."""
        ...

    async def write(self, point: PointId, value: Value) -> None:
        """Write one point. WriteRefused (nothing sent), WriteFailed or DeviceUnavailable."""
        ...
