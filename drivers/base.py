"""The seam between the agent and a protocol: what every driver provides and may raise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Self

from edge_agent.model import PointId, Reading

__all__ = ["DeviceConfigError", "DeviceUnavailable", "Driver", "PollGroup"]


class DeviceUnavailable(Exception):
    """The device cannot be reached or stopped answering: retry later with backoff."""


class DeviceConfigError(Exception):
    """The device answers, but not as configured: retrying will not help; fix the config."""


@dataclass(frozen=True, slots=True)
class PollGroup:
    """Points read together at one interval; the driver plans its requests per group."""

    interval_s: float
    points: tuple[PointId, ...]


class Driver(Protocol):
    """One device (or one connection shared by units). A fault never escapes as anything but
    `DeviceUnavailable` or `DeviceConfigError`."""

    @property
    def device(self) -> str:
        """The device's name in the site file."""
        ...

    def poll_groups(self) -> Sequence[PollGroup]:
        """The groups to poll, each at its interval; fixed for the driver's life."""
        ...

    async def __aenter__(self) -> Self:
        """Connect. Raises DeviceUnavailable or DeviceConfigError."""
        ...

    async def __aexit__(self, *exc: object) -> None:
        """Disconnect within a bounded time; never raises."""
        ...

    async def read(self, group: PollGroup, at: datetime) -> list[Reading]:
        """One reading per point of `group`, stamped `at`. A point the device refuses is BAD;
        a lost connection raises DeviceUnavailable."""
        ...
