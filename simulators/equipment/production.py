"""Production machines that the agent watches but does not shed.

The setpoint furnace heats towards a temperature the operator sets; the injection moulder is
a critical process load (a stopped moulder scraps the shots in its barrel), so neither has a
heartbeat: the agent only reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from .base import Machine, Value

__all__ = ["Furnace", "InjectionMoulder"]


@dataclass
class Furnace(Machine):
    """An electric furnace with two zones: heats towards its setpoint while enabled, at up
    to `max_kw`, and loses heat to the hall in proportion to its temperature."""

    max_kw: float = 120.0
    ambient_c: float = 30.0
    heat_capacity_kj_per_k: float = 3_000.0
    loss_kw_per_k: float = 0.08
    zone_c: list[float] = field(default_factory=lambda: [30.0, 30.0])
    inputs: dict[str, Value] = field(default_factory=lambda: {"enable": True, "setpoint_c": 850.0})

    def _heater_kw(self, zone: int) -> float:
        if not self.inputs["enable"]:
            return 0.0
        error = float(self.inputs["setpoint_c"]) - self.zone_c[zone]
        holding = self.loss_kw_per_k * (self.zone_c[zone] - self.ambient_c)
        return min(self.max_kw / 2, max(0.0, holding + 0.5 * error))

    def power_kw(self) -> float:
        return sum(self._heater_kw(z) for z in range(2))

    def _advance(self, dt_s: float, now: datetime) -> None:
        for zone in range(2):
            net_kw = self._heater_kw(zone) - self.loss_kw_per_k * (
                self.zone_c[zone] - self.ambient_c
            )
            self.zone_c[zone] += net_kw * dt_s / (self.heat_capacity_kj_per_k / 2)

    def values(self) -> dict[str, Value]:
        return {
            "zone1_temp_c": self.zone_c[0],
            "zone2_temp_c": self.zone_c[1],
            "power_kw": self.power_kw(),
            "energy_kwh": self.energy_kwh,
            "state": 2 if self.inputs["enable"] else 0,
            **self.inputs,
        }


@dataclass
class InjectionMoulder(Machine):
    """Cycles every `cycle_s` while enabled: barrel heaters hold temperature, the motor
    draws a pulse while injecting and clamping."""

    cycle_s: float = 30.0
    heater_kw_on: float = 18.0
    motor_kw_peak: float = 45.0
    phase_s: float = 0.0
    cycles: int = 0
    inputs: dict[str, Value] = field(default_factory=lambda: {"enable": True})

    def _motor_kw(self) -> float:
        if not self.inputs["enable"]:
            return 0.0
        fraction = self.phase_s / self.cycle_s
        return self.motor_kw_peak * math.sin(math.pi * fraction / 0.4) if fraction < 0.4 else 3.0

    def power_kw(self) -> float:
        return self._motor_kw() + (self.heater_kw_on if self.inputs["enable"] else 1.5)

    def _advance(self, dt_s: float, now: datetime) -> None:
        if not self.inputs["enable"]:
            return
        self.phase_s += dt_s
        while self.phase_s >= self.cycle_s:
            self.phase_s -= self.cycle_s
            self.cycles += 1

    def values(self) -> dict[str, Value]:
        return {
            "state": 2 if self.inputs["enable"] else 0,
            "cycle_count": self.cycles,
            "heater_kw": self.heater_kw_on if self.inputs["enable"] else 1.5,
            "motor_kw": self._motor_kw(),
            "power_kw": self.power_kw(),
            "energy_kwh": self.energy_kwh,
            **self.inputs,
        }
