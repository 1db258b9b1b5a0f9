"""The billing window's energy so far, and what the rest of it may still draw.

The utility bills (and the park caps) the average power over a window, not the power now:
a peak of a few seconds costs nothing, a quarter hour above the limit costs the month. So the
limiter needs the window's energy so far and the power the remainder may draw to end it under
the target. Energy comes from the meter's register where it can (what the utility's meter
counts), else from integrating the power readings.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import WindowConfig

__all__ = ["Projection", "WindowTracker"]

_EPOCH = datetime(1970, 1, 1).astimezone()


@dataclass(frozen=True, slots=True)
class Projection:
    window_start: datetime
    energy_kwh: float
    """Energy of the window so far (for a sliding window: of its part that stays in it)."""
    remaining_s: float
    """How long the power now still counts in the window being projected."""
    power_kw: float
    projected_kw: float
    """The window's average if the power stays as it is now."""

    def allowed_kw(self, target_kw: float, length_s: float) -> float:
        """The power the remainder may draw to end the window at `target_kw`."""
        return (target_kw * length_s / 3600.0 - self.energy_kwh) * 3600.0 / self.remaining_s


class WindowTracker:
    """Cumulative energy sampled each cycle; the window's share of it on demand."""

    def __init__(self, window: WindowConfig, *, min_remaining_s: float = 30.0) -> None:
        self.window = window
        self._min_remaining_s = min_remaining_s
        self._samples: deque[tuple[datetime, float]] = deque()
        """(time, cumulative kWh) over the last window and a bit."""
        self._cumulative = 0.0
        self._first_kw = 0.0
        self._last: tuple[datetime, float, float | None] | None = None
        """(time, power kW, register kWh) of the previous good sample."""

    def update(self, now: datetime, power_kw: float, register_kwh: float | None) -> None:
        """One good meter sample. The register's step is used when it moved plausibly,
        else the power integrated since the last sample (registers are coarse on some meters,
        and reset or wrap on others)."""
        if self._last is not None:
            then, last_kw, last_register = self._last
            dt_h = (now - then).total_seconds() / 3600.0
            integrated = (last_kw + power_kw) / 2 * dt_h
            step = integrated
            if register_kwh is not None and last_register is not None:
                delta = register_kwh - last_register
                # A register that moved within a factor of two of the power's integral is
                # believed; one that jumped or went backwards is not.
                if 0 <= delta <= 2 * integrated + 0.01:
                    step = delta
            self._cumulative += max(0.0, step)
        if not self._samples:
            self._first_kw = power_kw
        self._last = (now, power_kw, register_kwh)
        self._samples.append((now, self._cumulative))
        horizon = now - timedelta(seconds=2 * self.window.length_s)
        while len(self._samples) > 2 and self._samples[1][0] <= horizon:
            self._samples.popleft()

    def forget(self) -> None:
        """The meter was lost: integration cannot bridge the gap."""
        self._last = None

    def window_start(self, now: datetime) -> datetime:
        length = self.window.length_s
        seconds = (now - _EPOCH).total_seconds()
        return now - timedelta(seconds=seconds % length)

    def projection(self, now: datetime, power_kw: float) -> Projection:
        """Before the first sample, the window is assumed to have drawn the first sample's
        power (after a restart the agent does not know better, and this is neither
        optimistic nor alarmist)."""
        length = self.window.length_s
        if self.window.kind == "fixed":
            start = self.window_start(now)
            left = (start - now).total_seconds() + length
            since = start
        else:
            # The window ending a few minutes from now: what stays of it, plus the power now.
            left = min(float(length), 300.0)
            since = now - timedelta(seconds=length - left)
            start = now - timedelta(seconds=length)
        energy = self._cumulative - self._at(since)
        projected = (energy + power_kw * left / 3600.0) / (length / 3600.0)
        return Projection(start, energy, max(self._min_remaining_s, left), power_kw, projected)

    def _at(self, moment: datetime) -> float:
        """Cumulative energy at `moment`, interpolated; the oldest known before history."""
        samples = self._samples
        if not samples:
            return self._cumulative
        if moment <= samples[0][0]:
            before_s = (samples[0][0] - moment).total_seconds()
            return samples[0][1] - self._first_kw * before_s / 3600.0
        previous = samples[0]
        for sample in samples:
            if sample[0] >= moment:
                span = (sample[0] - previous[0]).total_seconds()
                if span <= 0:
                    return sample[1]
                share = (moment - previous[0]).total_seconds() / span
                return previous[1] + share * (sample[1] - previous[1])
            previous = sample
        return samples[-1][1]
