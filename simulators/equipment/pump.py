"""A pump filling a process tank under its own level switches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .base import Controllable, Value
from .profiles import local_hour, shift_factor, smooth_noise

__all__ = ["TankPump"]


@dataclass
class TankPump(Controllable):
    """Starts at `start_pct`, stops at `stop_pct`; the process draws water by the shift.
    Inhibited, the tank drains: below `min_pct` the process suffers, measured in %·s."""

    rated_kw: float = 22.0
    flow_m3_h: float = 60.0
    tank_m3: float = 50.0
    draw_m3_h: float = 30.0
    """The process draw at full shift."""
    night_share: float = 0.3
    start_pct: float = 40.0
    stop_pct: float = 90.0
    min_pct: float = 15.0
    seed: int = 1
    level_pct: float = 60.0
    running: bool = False
    level_below_min_pct_s: float = 0.0

    def draw_m3_h_at(self, now: datetime) -> float:
        swing = 1.0 + 0.25 * smooth_noise(self.seed, now.timestamp(), 120.0, 3)
        return self.draw_m3_h * shift_factor(local_hour(now), self.night_share) * swing

    def power_kw(self) -> float:
        return self.rated_kw if self.running else 0.0

    def _advance(self, dt_s: float, now: datetime) -> None:
        if not self.enabled:
            self.running = False
        elif self.level_pct <= self.start_pct:
            self.running = True
        elif self.level_pct >= self.stop_pct:
            self.running = False
        inflow = self.flow_m3_h if self.running else 0.0
        net = inflow - self.draw_m3_h_at(now)
        self.level_pct += net * dt_s / 3600.0 / self.tank_m3 * 100.0
        self.level_pct = min(100.0, max(0.0, self.level_pct))
        if self.level_pct < self.min_pct:
            self.level_below_min_pct_s += (self.min_pct - self.level_pct) * dt_s

    def values(self) -> dict[str, Value]:
        return {
            "level_pct": self.level_pct,
            "running": self.running,
            **self._contract_values(),
        }

    def violations(self) -> dict[str, float]:
        return {"level_below_min_pct_s": self.level_below_min_pct_s}
