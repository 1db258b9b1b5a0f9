"""A process chiller charging a chilled-water storage tank under its own thermostat."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .base import Controllable, Value
from .profiles import local_hour, shift_factor, smooth_noise

__all__ = ["Chiller"]

_WATER_KJ_PER_M3_K = 4_186.0


@dataclass
class Chiller(Controllable):
    """Runs at rated power (cooling `rated_kw * cop`) from `setpoint_c + band_k` down to
    `setpoint_c`; the process draws heat from the tank all the while. The tank is what makes
    the chiller shiftable: pre-cooled, it rides through an inhibit until it warms past
    `max_c`, beyond which the process suffers, measured in K·s."""

    rated_kw: float = 75.0
    cop: float = 4.0
    standby_kw: float = 0.8
    load_kw_thermal: float = 200.0
    """Heat the process puts into the water at full shift, kW."""
    night_share: float = 0.6
    tank_m3: float = 30.0
    band_k: float = 3.0
    max_c: float = 12.0
    seed: int = 1
    supply_c: float = 7.5
    running: bool = False
    temp_above_max_k_s: float = 0.0
    inputs: dict[str, Value] = field(default_factory=lambda: {"setpoint_c": 6.0})

    def load_kw(self, now: datetime) -> float:
        swing = 1.0 + 0.1 * smooth_noise(self.seed, now.timestamp(), 300.0, 2)
        return self.load_kw_thermal * shift_factor(local_hour(now), self.night_share) * swing

    def power_kw(self) -> float:
        return self.rated_kw if self.running else self.standby_kw

    def _advance(self, dt_s: float, now: datetime) -> None:
        low = float(self.inputs["setpoint_c"])
        if not self.enabled:
            self.running = False
        elif self.supply_c >= low + self.band_k:
            self.running = True
        elif self.supply_c <= low:
            self.running = False
        cooling = self.rated_kw * self.cop if self.running else 0.0
        capacity = self.tank_m3 * _WATER_KJ_PER_M3_K
        self.supply_c += (self.load_kw(now) - cooling) * dt_s / capacity
        if self.supply_c > self.max_c:
            self.temp_above_max_k_s += (self.supply_c - self.max_c) * dt_s

    def values(self) -> dict[str, Value]:
        return {
            "supply_temp_c": self.supply_c,
            "setpoint_c": float(self.inputs["setpoint_c"]),
            "running": self.running,
            **self._contract_values(),
        }

    def violations(self) -> dict[str, float]:
        return {"temp_above_max_k_s": self.temp_above_max_k_s}
