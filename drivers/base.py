"""The seam between the agent and a protocol: what every driver provides and may raise, and
the entry each protocol has in the driver registry (`drivers/registry.py`).

A driver serves one connection or line and the devices on it (a Modbus gateway or RS-485
bus serves many units; an OPC UA server is one device). The poller schedules its groups.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Generic, Protocol, Self, TypeVar

from edge_agent.clock import Clock
from edge_agent.config.findings import Finding
from edge_agent.model import PointId, Reading, Value

__all__ = [
    "DeviceConfigError",
    "DevicePolicy",
    "DeviceUnavailable",
    "Driver",
    "LineSettings",
    "Place",
    "PollGroup",
    "ProtocolEntry",
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


@dataclass(frozen=True, slots=True)
class DevicePolicy:
    """How the poller treats one device that stops answering while its line is fine."""

    degrade_after: int = 3
    """Misses in a row before the device is polled only at backoff intervals."""
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0


class LineSettings(Protocol):
    """What the poller reads of a line's settings: the backoff of its reconnects."""

    @property
    def reconnect_initial_s(self) -> float: ...

    @property
    def reconnect_max_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Place:
    """Where a device is on its line, in the words an operator searches for."""

    address: str
    """`host:port`, a serial port, or an `opc.tcp://` endpoint."""
    unit: int | None = None
    """The Modbus unit id; None where the protocol has none (OPC UA)."""


L = TypeVar("L", bound=LineSettings)
"""A protocol's line settings: a Modbus line, or the OPC UA device that is its own session."""
D = TypeVar("D")
"""A protocol's device models."""
S_contra = TypeVar("S_contra", contravariant=True)
"""What the protocol reads of the site file besides the device (its declared lines)."""


class ProtocolEntry(ABC, Generic[L, D, S_contra]):
    """A protocol as the agent, reload, `edge-agent check` and `plan`, the loader and the
    metrics see it. Each protocol's folder has one (`registration.py`); the registry's table
    maps each `driver:` to one."""

    name: ClassVar[str]
    """The catalogue's `protocol:` and the first half of a line's key: `modbus`, `opcua`."""
    line_noun: ClassVar[str]
    """How a reload's log names one of its lines: `line` rs485, `OPC UA` oven."""
    catalogue_device: ClassVar[Mapping[str, str]]
    """The stand-in device a catalogue model of this protocol is validated as (`driver:` and
    the fields a site would give)."""

    @abstractmethod
    def line_of(self, device: D, site: S_contra) -> tuple[str, L]:
        """The line a device is on: its name and the settings its driver opens with. Devices
        on one line share one driver and one poll loop."""

    def check(self, device: D, site: S_contra) -> list[Finding]:
        """Every way the device does not fit the rest of the site file (a line not declared),
        each at its path from the device's own entry (`("line",)`); what a finding says is
        absent is from the top of the site file (`("modbus_lines",)`)."""
        return []

    @abstractmethod
    def open(self, line: L, devices: Sequence[D], clock: Clock) -> Driver:
        """The driver of one line and its devices, on `clock`; it connects in `__aenter__`.
        The protocol library is imported here, so a site without the protocol never loads it."""

    def policy(self, device: D) -> DevicePolicy | None:
        """How the poller treats the device when it stops answering; None: the poller's
        default."""
        return None

    @abstractmethod
    def describe(self, line: L, devices: Sequence[D]) -> list[str]:
        """`edge-agent check`'s lines for one line and its devices, a blank line first."""

    @abstractmethod
    def plan(self, device: D) -> list[str]:
        """`edge-agent plan`'s lines for one device: what one poll of it asks of the line."""

    @abstractmethod
    def locate(self, line: L, device: D) -> Place:
        """Where the device is, for its metric labels and its log records."""
