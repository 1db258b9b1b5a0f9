"""What every simulated machine has, and the watchdog every controllable one adds.

A machine is stepped by whoever owns the clock (the OPC UA simulator, or a test): its
`inputs` are what an operator or the agent wrote, `step(dt_s, now)` advances the physics over
the `dt_s` seconds that end at `now` (aware UTC), and `values()` is every point of its node
map. Machines never read a clock of their own and never use the global random generator, so
the same seed and the same steps give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Controllable", "Machine", "Value"]

Value = float | int | bool
"""A point's value: Double, Int32 or Boolean on the OPC UA side (bool before int)."""


@dataclass
class Machine:
    """An energy register integrating the machine's power, and the contract of a model."""

    energy_kwh: float = 0.0
    inputs: dict[str, Value] = field(default_factory=dict)

    def step(self, dt_s: float, now: datetime) -> None:
        self._advance(dt_s, now)
        self.energy_kwh += self.power_kw() * dt_s / 3600.0

    def _advance(self, dt_s: float, now: datetime) -> None:
        raise NotImplementedError

    def power_kw(self) -> float:
        """Electrical power the machine draws now (a generator: what it produces), kW."""
        raise NotImplementedError

    def grid_kw(self) -> float:
        """What the machine adds to the site meter's import, kW: generation is negative."""
        return self.power_kw()

    def values(self) -> dict[str, Value]:
        raise NotImplementedError

    def violations(self) -> dict[str, float]:
        """Process-band breaches so far, by name, in physical units (bar·s, K·s, kWh, counts)."""
        return {}

    def written(self, name: str, now: datetime) -> None:
        """A client wrote the input `name` (the value is already in `inputs`)."""


@dataclass
class Controllable(Machine):
    """A machine the agent may inhibit, watched by a PLC-style heartbeat.

    Once a client has written `heartbeat` at least once, the value must change at least every
    `heartbeat_timeout_s` of simulated time; otherwise the machine puts back its
    `safe_inputs()` by itself, counts a trip and shows `failsafe` until the heartbeat changes
    again. While in fail-safe the safe inputs are held: an agent that has stopped beating
    cannot inhibit the machine.
    """

    heartbeat_timeout_s: float = 60.0
    failsafe: bool = False
    failsafe_trips: int = 0
    _armed: bool = field(default=False, repr=False)
    _last_beat: Value = field(default=0, repr=False)
    _beat_at: datetime | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.inputs = {**self.safe_inputs(), "heartbeat": 0, **self.inputs}

    def safe_inputs(self) -> dict[str, Value]:
        """Where the machine goes without the agent: its own automatic control."""
        return {"enable": True}

    def written(self, name: str, now: datetime) -> None:
        if name == "heartbeat" and not self._armed:
            self._armed = True
            self._beat_at = now
            self._last_beat = self.inputs["heartbeat"]

    def step(self, dt_s: float, now: datetime) -> None:
        self._watch(now)
        super().step(dt_s, now)

    def _watch(self, now: datetime) -> None:
        beat = self.inputs.get("heartbeat", 0)
        if beat != self._last_beat:
            self._armed = True
            self._last_beat = beat
            self._beat_at = now
            self.failsafe = False
        elif (
            self._armed
            and not self.failsafe
            and self._beat_at is not None
            and (now - self._beat_at).total_seconds() > self.heartbeat_timeout_s
        ):
            self.failsafe = True
            self.failsafe_trips += 1
        if self.failsafe:
            self.inputs.update(self.safe_inputs())

    @property
    def enabled(self) -> bool:
        return bool(self.inputs["enable"])

    def _contract_values(self) -> dict[str, Value]:
        return {
            "enable": self.enabled,
            "heartbeat": int(self.inputs["heartbeat"]),
            "failsafe": self.failsafe,
            "power_kw": self.power_kw(),
            "energy_kwh": self.energy_kwh,
        }
