"""The `/health` verdict: ready, degraded or failing, and why, naming the devices.

Pure: the caller gathers the figures; the rules live here, so a table of cases tests them.
- failing: no device has been read for `failing_after_intervals` of its poll interval (the
  agent measures nothing), or the outbox is near its cap (summaries are about to be lost);
- degraded: some device is degraded or unavailable, or answers without a good value for
  `failing_after_intervals` of its poll interval (every point refused with a Modbus
  exception, say), or the broker is disconnected (summaries wait in the outbox, nothing is
  lost yet);
- ready: none of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = ["NEAR_CAP", "DeviceHealth", "Health", "assess"]

NEAR_CAP = 0.9
"""Outbox fill at which `/health` fails: at the cap the oldest summaries are dropped."""

Status = Literal["ready", "degraded", "failing"]


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    name: str
    where: str
    """`unit 3 on line-a (10.0.0.5:502)` or the OPC UA endpoint: where to look."""
    poll_interval_s: float
    last_success: datetime | None
    degraded: bool
    connected: bool
    """The device's line or session is up."""
    last_error: str | None
    last_good: datetime | None = None
    """The last read with a good value; None: never (or not tracked by the caller)."""
    tracks_good: bool = False
    """Whether `last_good` is known: a caller without it leaves the silent-failure rule out."""


@dataclass(frozen=True, slots=True)
class Health:
    status: Status
    reasons: list[str] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        """200 while the agent does its job, even partly; 503 when a supervisor should act."""
        return 503 if self.status == "failing" else 200

    def as_json(self) -> dict[str, object]:
        return {"status": self.status, "reasons": self.reasons}


def assess(
    devices: Sequence[DeviceHealth],
    *,
    now: datetime,
    started: datetime,
    failing_after_intervals: int,
    outbox_depth: int,
    outbox_cap: int,
    broker_connected: bool | None,
    broker_error: str | None = None,
) -> Health:
    """`broker_connected` None: the agent runs without a broker (`--no-publish`)."""
    failing: list[str] = []
    degraded: list[str] = []
    silent = []
    for device in devices:
        since = device.last_success or started
        age_s = (now - since).total_seconds()
        why = f": {device.last_error}" if device.last_error else ""
        if age_s > failing_after_intervals * device.poll_interval_s:
            silent.append(device.name)
        if device.degraded:
            degraded.append(f"device {device.name} ({device.where}) is degraded{why}")
        elif not device.connected and device.last_error is not None:
            degraded.append(f"device {device.name} ({device.where}) is unavailable{why}")
        elif age_s > 3 * device.poll_interval_s:
            never = "never read" if device.last_success is None else f"not read for {age_s:.0f} s"
            degraded.append(f"device {device.name} ({device.where}) is {never}{why}")
        elif device.tracks_good:
            good_s = (now - (device.last_good or started)).total_seconds()
            if good_s > failing_after_intervals * device.poll_interval_s:
                never = (
                    "no good value yet"
                    if device.last_good is None
                    else f"no good value for {good_s:.0f} s"
                )
                degraded.append(
                    f"device {device.name} ({device.where}) answers but has {never}{why}"
                )
    if devices and len(silent) == len(devices):
        failing.append(
            f"no device has been read for {failing_after_intervals} poll intervals "
            f"({', '.join(silent)})"
        )
    if outbox_cap and outbox_depth >= NEAR_CAP * outbox_cap:
        failing.append(
            f"the outbox holds {outbox_depth} of at most {outbox_cap} summaries; at the cap "
            "the oldest are dropped"
        )
    if broker_connected is False:
        why = f": {broker_error}" if broker_error else ""
        degraded.append(f"the broker is disconnected{why}; summaries wait in the outbox")
    if failing:
        return Health("failing", failing + degraded)
    if degraded:
        return Health("degraded", degraded)
    return Health("ready")
