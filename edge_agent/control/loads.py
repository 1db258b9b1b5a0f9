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

__all__ = [
    "DRAWS_NOTHING_SHARE",
    "DRIFT_MEMORY_S",
    "DRIFT_MIN_S",
    "REFILL_SHARE",
    "Action",
    "LoadState",
    "Why",
]

DRAWS_NOTHING_SHARE = 0.05
"""A load drawing this share of its rating or less is stopped (a chiller's standby)."""

DRIFT_MIN_S = 20.0
"""The shortest stretch a drift is measured over: readings closer than this are noise."""

DRIFT_MEMORY_S = 900.0
"""How far back the drift remembers: the process's draw follows the shift, over minutes."""

REFILL_SHARE = 0.9
"""A load drawing this share of its rating or more runs flat out: its store fills at its
refill rate (a chiller running, a compressor loaded, a pump pumping)."""

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
    refill_per_s: float | None = None
    """How fast the band variable moves back while the load runs at (nearly) its rating:
    the store filling net of the process's draw, per second (None until seen). With the
    drift it says how long a shed's making-up lasts: a chiller with little to spare over
    its process's heat takes hours to win back a quarter of an hour off."""
    owed_level: float | None = None
    """Where the band variable stood when the limiter shed the load, until the store is
    back there: the making-up its sheds still owe (None: nothing owed)."""
    _band_seen: tuple[datetime, float] | None = None
    _refill_seen: tuple[datetime, float] | None = None
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
        receiver falling while its compressor runs unloaded), and its refill when it drew
        nearly its rating between them; and whether what its sheds owe is made up."""
        value, kw = self.band_value, self.power_kw
        idle_kw = (self.config.idle_share or DRAWS_NOTHING_SHARE) * self.config.rated_kw
        idle = value is not None and kw is not None and kw <= idle_kw
        full = value is not None and kw is not None and kw >= REFILL_SHARE * self.config.rated_kw
        self._band_seen, self.drift_per_s = _learn_rate(
            self._band_seen, self.drift_per_s, at, value if idle else None
        )
        self._refill_seen, self.refill_per_s = _learn_rate(
            self._refill_seen, self.refill_per_s, at, value if full else None
        )
        owed = self.owed_level
        if value is not None and owed is not None and self.held_by is None:
            self.owed_level = None if self._depleted_by(owed, value) <= 0.0 else owed

    def owe(self) -> None:
        """A shed by the limiter: its store is owed back to where its variable is now (or
        to where an earlier shed, not yet made up, left it owed)."""
        if self.owed_level is None and self.config.band is not None:
            self.owed_level = self.band_value

    def made_up_s(self, hold_s: float) -> float | None:
        """Seconds from now until a shed lasting `hold_s` is made up: the hold, then the
        store's running at its rating until its variable is back where the limiter's sheds
        found it (None: its drift or refill is not known yet)."""
        value, drift, refill = self.band_value, self.drift_per_s, self.refill_per_s
        if self.config.band is None or value is None or drift is None or refill is None:
            return None
        after = value + drift * hold_s
        reference = value if self.owed_level is None else self.owed_level
        owed = self._depleted_by(reference, after)
        speed = -self._depleted_by(0.0, refill)  # the refill, as the store's gain per second
        if speed <= 0.0:
            return None
        return hold_s + max(0.0, owed) / speed

    def _depleted_by(self, reference: float, value: float) -> float:
        """How far `value` is on the store's empty side of `reference`, in the variable's
        unit (negative: on its full side): above it for a variable the load lowers (a
        chiller's supply temperature), below it for one the load raises."""
        band = self.config.band
        assert band is not None
        return value - reference if band.maximum is not None else reference - value

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


def _learn_rate(
    seen: tuple[datetime, float] | None, rate: float | None, at: datetime, value: float | None
) -> tuple[tuple[datetime, float] | None, float | None]:
    """One step of a band variable's rate in one mode (drifting or refilling): `value` is
    None when the load is not in that mode now, which ends the stretch. Readings closer
    than DRIFT_MIN_S are noise; the rate remembers DRIFT_MEMORY_S back. Returns the
    stretch's last reading and the rate."""
    if value is None:
        return None, rate
    if seen is None:
        return (at, value), rate
    elapsed = (at - seen[0]).total_seconds()
    if elapsed < DRIFT_MIN_S:
        return seen, rate
    now_rate = (value - seen[1]) / elapsed
    weight = min(1.0, elapsed / DRIFT_MEMORY_S)
    learned = now_rate if rate is None else (1.0 - weight) * rate + weight * now_rate
    return (at, value), learned
