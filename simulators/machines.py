"""Production machines whose power follows their state, stepped on the injectable clock.

Each machine has inputs an operator or the agent may write (enable, setpoint) and outputs
the physics gives; `step(dt_s)` advances it, `values()` is every point of its node map.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["PHYSICS", "Chiller", "Furnace", "InjectionMoulder", "Machine"]


@dataclass
class Machine:
    """What every simulated machine has: an energy register integrating its power."""

    energy_kwh: float = 0.0
    inputs: dict[str, float | bool] = field(default_factory=dict)

    def step(self, dt_s: float) -> None:
        self._advance(dt_s)
        self.energy_kwh += self.power_kw() * dt_s / 3600.0

    def _advance(self, dt_s: float) -> None:
        raise NotImplementedError

    def power_kw(self) -> float:
        raise NotImplementedError

    def values(self) -> dict[str, float | bool]:
        raise NotImplementedError


@dataclass
class Furnace(Machine):
    """An electric furnace with two zones: heats towards its setpoint while enabled, at up
    to `max_kw`, and loses heat to the hall in proportion to its temperature."""

    max_kw: float = 120.0
    ambient_c: float = 30.0
    heat_capacity_kj_per_k: float = 3_000.0
    loss_kw_per_k: float = 0.08
    zone_c: list[float] = field(default_factory=lambda: [30.0, 30.0])
    inputs: dict[str, float | bool] = field(
        default_factory=lambda: {"enable": True, "setpoint_c": 850.0}
    )

    def _heater_kw(self, zone: int) -> float:
        if not self.inputs["enable"]:
            return 0.0
        error = float(self.inputs["setpoint_c"]) - self.zone_c[zone]
        holding = self.loss_kw_per_k * (self.zone_c[zone] - self.ambient_c)
        return min(self.max_kw / 2, max(0.0, holding + 0.5 * error))

    def power_kw(self) -> float:
        return sum(self._heater_kw(z) for z in range(2))

    def _advance(self, dt_s: float) -> None:
        for zone in range(2):
            net_kw = self._heater_kw(zone) - self.loss_kw_per_k * (
                self.zone_c[zone] - self.ambient_c
            )
            self.zone_c[zone] += net_kw * dt_s / (self.heat_capacity_kj_per_k / 2)

    def values(self) -> dict[str, float | bool]:
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
    inputs: dict[str, float | bool] = field(default_factory=lambda: {"enable": True})

    def _motor_kw(self) -> float:
        if not self.inputs["enable"]:
            return 0.0
        fraction = self.phase_s / self.cycle_s
        return self.motor_kw_peak * math.sin(math.pi * fraction / 0.4) if fraction < 0.4 else 3.0

    def power_kw(self) -> float:
        return self._motor_kw() + (self.heater_kw_on if self.inputs["enable"] else 1.5)

    def _advance(self, dt_s: float) -> None:
        if not self.inputs["enable"]:
            return
        self.phase_s += dt_s
        while self.phase_s >= self.cycle_s:
            self.phase_s -= self.cycle_s
            self.cycles += 1

    def values(self) -> dict[str, float | bool]:
        return {
            "state": 2 if self.inputs["enable"] else 0,
            "cycle_count": self.cycles,
            "heater_kw": self.heater_kw_on if self.inputs["enable"] else 1.5,
            "motor_kw": self._motor_kw(),
            "power_kw": self.power_kw(),
            "energy_kwh": self.energy_kwh,
            **self.inputs,
        }


@dataclass
class Chiller(Machine):
    """Cools a chilled-water loop with a constant process load; the compressor runs while
    enabled and the supply is above its setpoint."""

    rated_kw: float = 75.0
    cop: float = 4.0
    load_kw_thermal: float = 200.0
    loop_capacity_kj_per_k: float = 40_000.0
    supply_c: float = 7.0
    inputs: dict[str, float | bool] = field(
        default_factory=lambda: {"enable": True, "setpoint_c": 7.0}
    )

    def power_kw(self) -> float:
        if not self.inputs["enable"]:
            return 0.8
        demand = (self.supply_c - float(self.inputs["setpoint_c"]) + 1.0) * self.rated_kw
        return min(self.rated_kw, max(0.2 * self.rated_kw, demand))

    def _advance(self, dt_s: float) -> None:
        cooling = (self.power_kw() * self.cop) if self.inputs["enable"] else 0.0
        self.supply_c += (self.load_kw_thermal - cooling) * dt_s / self.loop_capacity_kj_per_k

    def values(self) -> dict[str, float | bool]:
        return {
            "supply_temp_c": self.supply_c,
            "power_kw": self.power_kw(),
            "energy_kwh": self.energy_kwh,
            **self.inputs,
        }


PHYSICS: dict[str, Callable[[], Machine]] = {
    "electric-furnace": Furnace,
    "injection-moulder": InjectionMoulder,
    "process-chiller": Chiller,
}
"""The physics behind each OPC UA node map of the catalogue."""
