"""An air compressor charging a receiver, under its own load/unload pressure switch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .base import Controllable, Value
from .profiles import local_hour, shift_factor, smooth_noise

__all__ = ["AirCompressor"]

_ATMOSPHERE_BAR = 1.013


@dataclass
class AirCompressor(Controllable):
    """Loads (full power, delivering `fad_m3_min`) when the receiver falls to `cut_in_bar`,
    unloads (about a quarter of rated power, delivering nothing) at `cut_out_bar`, and stops
    its motor after `run_on_s` unloaded. Inhibited, the motor is off and the plant's air
    demand drains the receiver: below `min_bar` the process suffers, measured in bar·s.

    Pressures are gauge; the receiver and the pipe network are one volume of `receiver_m3`.
    """

    rated_kw: float = 55.0
    unloaded_share: float = 0.25
    fad_m3_min: float = 9.5
    """Free air delivered while loaded, m³/min at atmospheric pressure."""
    receiver_m3: float = 8.0
    cut_in_bar: float = 6.5
    cut_out_bar: float = 7.5
    min_bar: float = 6.0
    demand_share: float = 0.6
    """The plant's air demand at full shift, as a share of `fad_m3_min`."""
    leak_share: float = 0.08
    """Leaks, around the clock, as a share of `fad_m3_min`."""
    night_share: float = 0.35
    run_on_s: float = 600.0
    seed: int = 1
    pressure_bar: float = 7.0
    loaded: bool = False
    motor_on: bool = True
    pressure_below_min_bar_s: float = 0.0
    _unloaded_s: float = 0.0

    def demand_m3_min(self, now: datetime) -> float:
        t = now.timestamp()
        swing = 1.0 + 0.2 * smooth_noise(self.seed, t, 90.0, 1)
        shift = shift_factor(local_hour(now), self.night_share)
        return self.fad_m3_min * (self.demand_share * shift * swing + self.leak_share)

    def power_kw(self) -> float:
        if not self.motor_on:
            return 0.0
        return self.rated_kw if self.loaded else self.rated_kw * self.unloaded_share

    def _advance(self, dt_s: float, now: datetime) -> None:
        if not self.enabled:
            self.loaded = False
            self.motor_on = False
        elif self.pressure_bar <= self.cut_in_bar:
            self.loaded = True
            self.motor_on = True
        elif self.pressure_bar >= self.cut_out_bar:
            self.loaded = False
        if self.enabled and not self.loaded and self.motor_on:
            self._unloaded_s += dt_s
            if self._unloaded_s >= self.run_on_s:
                self.motor_on = False
        else:
            self._unloaded_s = 0.0
        delivered = self.fad_m3_min if self.loaded else 0.0
        net = delivered - self.demand_m3_min(now)
        self.pressure_bar += net / 60.0 * dt_s * _ATMOSPHERE_BAR / self.receiver_m3
        self.pressure_bar = max(0.0, self.pressure_bar)
        if self.pressure_bar < self.min_bar:
            self.pressure_below_min_bar_s += (self.min_bar - self.pressure_bar) * dt_s

    def values(self) -> dict[str, Value]:
        return {
            "pressure_bar": self.pressure_bar,
            "loaded": self.loaded,
            **self._contract_values(),
        }

    def violations(self) -> dict[str, float]:
        return {"pressure_below_min_bar_s": self.pressure_below_min_bar_s}
