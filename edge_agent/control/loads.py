"""What the agent knows of each load between cycles: its state, since when, and why.

The limiter reads it to choose whom to shed; the guard updates it when a write is done (or,
in advisory mode, decided), and enforces the minimum on and off times from it; the summary
reports each load's time on, shed and shifted from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from .config import LoadConfig

__all__ = ["DRAWS_NOTHING_SHARE", "DRIFT_MEMORY_S", "DRIFT_MIN_S", "Action", "LoadState", "Why"]

DRAWS_NOTHING_SHARE = 0.05
"""A load drawing this share of its rating or less is stopped (a chiller's standby)."""

DRIFT_MIN_S = 20.0
"""The shortest stretch a drift is measured over: readings closer than this are noise."""

DRIFT_MEMORY_S = 900.0
"""How far back the drift remembers: the process's draw follows the shift, over minutes."""

Why = Literal["shed", "restore", "defer", "start", "override", "safe-state"]


@dataclass(slots=True)
class LoadState:
    config: LoadConfig
    on: bool = True
    """What the agent last commanded (or, before any command, assumes: local operation)."""
    since: datetime | None = None
    """When `on` last changed; None: not since the agent started (no minimum time runs)."""
    held_by: Literal["limiter", "plan", "override", None] = None
    """Who holds the load off (or, for an override, on): whose decision it is to undo."""
    power_kw: float | None = None
    """The load's own measured power, when it has a power point and the reading is good."""
    band_value: float | None = None
    available: bool = True
    """False while the load's device cannot be read: nothing is decided for it then."""
    sheds_on: date | None = None
    """The site's local day the shed count is for: a plant's budget is its own day's."""
    sheds_today: int = 0
    hold_s: float | None = None
    """How long a shed of this load lasts before its process needs it back, learned from
    the sheds its band or maximum off time ended (None until one has)."""
    drift_per_s: float | None = None
    """How fast the band variable moves while the load delivers nothing (its own control
    has it stopped or idle, or it is shed): the process draining the store, per second,
    learned from the readings (None until seen)."""
    _band_seen: tuple[datetime, float] | None = None
    seconds: dict[str, float] = field(
        default_factory=lambda: {"on": 0.0, "shed": 0.0, "shifted": 0.0}
    )
    """Time on, shed (by the limiter) and shifted (by the plan) since the last summary."""

    @property
    def name(self) -> str:
        return self.config.name

    def expected_kw(self) -> float:
        """What switching the load changes: its measured power when running, else rated."""
        if self.on and self.power_kw is not None:
            return self.power_kw
        return self.config.rated_kw

    def held_for(self, now: datetime) -> float:
        """Seconds in the present state; a long time if unknown (the agent just started)."""
        return float("inf") if self.since is None else (now - self.since).total_seconds()

    def count_shed(self, today: date) -> None:
        if self.sheds_on != today:
            self.sheds_on, self.sheds_today = today, 0
        self.sheds_today += 1

    def sheds_left(self, today: date) -> int:
        used = self.sheds_today if self.sheds_on == today else 0
        return self.config.max_sheds_per_day - used

    def expected_hold_s(self) -> float:
        """How long a shed of this load is expected to last: what it has shown, else its
        maximum off time."""
        if self.hold_s is None:
            return self.config.max_off_s
        return min(self.hold_s, self.config.max_off_s)

    def learn_hold(self, seconds: float) -> None:
        """A shed ended by the process (band or maximum off time) after `seconds`."""
        self.hold_s = seconds if self.hold_s is None else 0.5 * self.hold_s + 0.5 * seconds

    def observe_band(self, at: datetime) -> None:
        """Learn the store's drift from the band reading now and the last one, when the load
        drew no more than idle power between them (a stopped chiller's tank warming, a
        receiver falling while its compressor runs unloaded)."""
        value = self.band_value
        idle_kw = (self.config.idle_share or DRAWS_NOTHING_SHARE) * self.config.rated_kw
        if value is None or self.power_kw is None or self.power_kw > idle_kw:
            self._band_seen = None
            return
        seen = self._band_seen
        if seen is None:
            self._band_seen = (at, value)
            return
        elapsed = (at - seen[0]).total_seconds()
        if elapsed < DRIFT_MIN_S:
            return
        rate = (value - seen[1]) / elapsed
        weight = min(1.0, elapsed / DRIFT_MEMORY_S)
        self.drift_per_s = (
            rate
            if self.drift_per_s is None
            else ((1.0 - weight) * self.drift_per_s + weight * rate)
        )
        self._band_seen = (at, value)

    def band_hold_s(self) -> float | None:
        """How long a shed now would last before the band brings the load back, from the
        band variable's distance to the restore edge and its drift (None: not known, or
        the store is not draining)."""
        band, value, drift = self.config.band, self.band_value, self.drift_per_s
        if band is None or value is None or drift is None:
            return None
        if band.minimum is not None:
            room, speed = value - (band.minimum + band.margin), -drift
        else:
            assert band.maximum is not None
            room, speed = (band.maximum - band.margin) - value, drift
        if speed <= 0.0:
            return None
        return max(0.0, room / speed)

    def accrue(self, seconds: float) -> None:
        if self.on:
            self.seconds["on"] += seconds
        elif self.held_by == "limiter":
            self.seconds["shed"] += seconds
        elif self.held_by == "plan":
            self.seconds["shifted"] += seconds


@dataclass(frozen=True, slots=True)
class Action:
    """One decision, with everything a plant engineer asks about it afterwards."""

    at: datetime
    load: str
    kind: Why
    on: bool
    """The state the action puts the load in."""
    reason: str
    """One sentence: what bound, and what the agent expects of the action."""
    binding: str
    """The constraint that decided: `demand limit`, `max off time`, `process band`,
    `tariff`, `deadline`, `override`, `device lost`, ..."""
    projected_kw: float | None
    limit_kw: float | None
    price_vnd_per_kwh: float | None
    priority: int
    expected_kwh: float
    """Energy moved out of the window (shed) or shifted in time (defer / start)."""
    expected_vnd: float
    """The saving the agent expects from it (negative: what a restore or start costs)."""
    written: bool = False
    """False in advisory mode, or when the guard refused the write (see `refused`)."""
    refused: str | None = None
