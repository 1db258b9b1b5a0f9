"""A three-phase energy meter on a factory feeder: plausible, time-varying, self-consistent.

Every value is a pure function of the simulated time and the seed, so two runs of the same
scenario read the same numbers, whatever order or rate the requests arrive at:

- phase power follows a production profile (a base load, slow swings of a few minutes, and
  noise that changes every second); total power is exactly the sum of the phases;
- import energy is the integral of total power on a one-second grid, advanced lazily;
- current is P / (V * PF) per phase; frequency wanders a few tens of mHz around 50 Hz.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from edge_agent.clock import Clock

__all__ = ["MeterModel"]

_PHASE_SHIFT = (0.0, 2.1, 4.2)


def _noise(seed: int, second: int, channel: int) -> float:
    """Deterministic noise in [-1, 1) for one second and one channel (no RNG state)."""
    x = (second * 2654435761 + seed * 40503 + channel * 97531) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x45D9F3B) & 0xFFFFFFFF
    x ^= x >> 16
    return x / 2**31 - 1.0


@dataclass
class MeterModel:
    clock: Clock
    base_kw: float = 180.0
    """Average total load; the swings and noise are relative to it."""
    seed: int = 1
    initial_import_kwh: float = 12_500.0
    shape: Callable[[float], float] | None = None
    """Multiplies the base load at time t (a factory's shifts); None is flat."""
    extra_kw: Callable[[], float] | None = None
    """Power of the metered machines now, spread over the three phases."""
    _first_second: int | None = field(default=None, init=False)
    _cumulative_kwh: array[float] = field(default_factory=lambda: array("d"), init=False)
    """Energy at each whole second since the first one asked for (8 bytes a second)."""

    def phase_power_kw(self, t: float, phase: int) -> float:
        second = math.floor(t)
        swing = 0.15 * math.sin(2 * math.pi * t / 480.0 + _PHASE_SHIFT[phase])
        slow = 0.10 * math.sin(2 * math.pi * t / 3600.0)
        noise = 0.03 * _noise(self.seed, second, phase)
        base = self.base_kw * (self.shape(t) if self.shape else 1.0)
        machines = self.extra_kw() if self.extra_kw else 0.0
        return max(0.0, base / 3 * (1.0 + swing + slow + noise) + machines / 3)

    def total_power_kw(self, t: float) -> float:
        return sum(self.phase_power_kw(t, p) for p in range(3))

    def voltage_v(self, t: float, phase: int) -> float:
        return (
            230.0
            + 2.0 * math.sin(2 * math.pi * t / 900.0 + phase)
            + 0.3 * _noise(self.seed, math.floor(t), 10 + phase)
        )

    def power_factor(self, t: float, phase: int) -> float:
        return 0.9 + 0.04 * math.sin(2 * math.pi * t / 1200.0 + phase)

    def frequency_hz(self, t: float) -> float:
        return (
            50.0
            + 0.03 * math.sin(2 * math.pi * t / 300.0)
            + 0.005 * _noise(self.seed, math.floor(t), 20)
        )

    def import_energy_kwh(self, t: float) -> float:
        """Energy registered up to `t`: whole seconds on the grid, plus the current second.

        A pure function of `t` (from the first time the meter was read on), so a test can ask
        what the register held at any instant the agent polled it.
        """
        second = math.floor(t)
        if self._first_second is None:
            self._first_second = second
            self._cumulative_kwh.append(self.initial_import_kwh)
        index = second - self._first_second
        if index < 0:
            raise ValueError("asked for the meter's energy before it was installed")
        while len(self._cumulative_kwh) <= index:
            done = self._first_second + len(self._cumulative_kwh) - 1
            self._cumulative_kwh.append(
                self._cumulative_kwh[-1] + self.total_power_kw(done) / 3600.0
            )
        return self._cumulative_kwh[index] + self.total_power_kw(second) * (t - second) / 3600.0

    def values(self, now: datetime | None = None) -> dict[str, float]:
        """Every point of the `eastron-sdm630` catalogue map at `now`, in the map's units."""
        t = (now or self.clock.now()).timestamp()
        phase_kw = [self.phase_power_kw(t, p) for p in range(3)]
        volts = [self.voltage_v(t, p) for p in range(3)]
        pfs = [self.power_factor(t, p) for p in range(3)]
        total_kw = sum(phase_kw)
        apparent_kva = sum(kw / pf for kw, pf in zip(phase_kw, pfs, strict=True))
        energy = self.import_energy_kwh(t)
        values: dict[str, float] = {
            "frequency_hz": self.frequency_hz(t),
            "total_power_kw": total_kw,
            "total_power_factor": total_kw / apparent_kva if apparent_kva else 1.0,
            "import_energy_kwh": energy,
            "export_energy_kwh": 0.0,
            "total_energy_kwh": energy,
            "demand_kw": self.base_kw,
            "max_demand_kw": self.base_kw * 1.3,
        }
        for p in range(3):
            values[f"voltage_l{p + 1}_v"] = volts[p]
            values[f"current_l{p + 1}_a"] = phase_kw[p] * 1000 / (volts[p] * pfs[p])
            values[f"power_l{p + 1}_kw"] = phase_kw[p]
            values[f"power_factor_l{p + 1}"] = pfs[p]
        return values
