"""A charger for electric cars or forklifts: sessions from the seed, a limit the agent sets."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from .base import Controllable, Value
from .profiles import PARK_ZONE

__all__ = ["Charger", "Session"]


@dataclass(frozen=True)
class Session:
    arrival: datetime
    departure: datetime
    energy_kwh: float
    """What the vehicle needs when it plugs in."""
    max_kw: float
    """What the vehicle accepts."""


@dataclass
class Charger(Controllable):
    """Charges the connected vehicle at the most it, the charger and `power_limit_kw` allow
    while enabled. Cars arrive about 07:30 and leave about 17:00 (fewer on Sundays);
    forklifts plug in at the ends of the three shifts (06:00, 14:00, 22:00) and leave some
    hours into the next. What is not delivered by departure is counted as `shortfall_kwh`.
    """

    kind: Literal["car", "forklift"] = "car"
    rated_kw: float = 11.0
    seed: int = 1
    session: Session | None = None
    delivered_kwh: float = 0.0
    shortfall_kwh: float = 0.0
    sessions_short: int = 0
    missed: list[tuple[Session, float]] = field(default_factory=list)
    """Each session that left short, with the kWh it lacked."""
    upcoming: list[Session] = field(default_factory=list)
    _kw: float = 0.0
    _days: set[date] = field(default_factory=set, repr=False)
    _now: datetime | None = field(default=None, repr=False)

    def safe_inputs(self) -> dict[str, Value]:
        return {"enable": True, "power_limit_kw": self.rated_kw}

    def day_sessions(self, day: date) -> list[Session]:
        """The sessions starting on a local day: a pure function of seed, kind and date."""
        rng = random.Random(f"{self.seed}/{self.kind}/{day.isoformat()}")
        midnight = datetime.combine(day, time(0), PARK_ZONE)
        sessions = []
        if self.kind == "car":
            if rng.random() < (0.25 if day.weekday() == 6 else 0.9):
                arrival = midnight + timedelta(hours=min(9.5, max(6.0, rng.gauss(7.5, 0.4))))
                departure = midnight + timedelta(hours=min(20.0, max(15.0, rng.gauss(17, 0.6))))
                sessions.append(
                    Session(arrival, departure, round(rng.uniform(8, 40), 1), rng.choice([7.4, 11]))
                )
        else:
            for shift_end in (6, 14, 22):
                if rng.random() < 0.75:
                    arrival = midnight + timedelta(hours=shift_end, minutes=rng.uniform(5, 25))
                    stay = timedelta(hours=rng.uniform(3.0, 7.5))
                    sessions.append(
                        Session(arrival, arrival + stay, round(rng.uniform(10, 30), 1), 8.0)
                    )
        return sessions

    def power_kw(self) -> float:
        return self._kw

    def _advance(self, dt_s: float, now: datetime) -> None:
        self._now = now
        day = now.astimezone(PARK_ZONE).date()
        if day not in self._days:
            self._days.add(day)
            self.upcoming.extend(self.day_sessions(day))
            self.upcoming.sort(key=lambda s: s.arrival)
        if self.session is not None and self.session.departure <= now:
            self.shortfall_kwh += self._needed_kwh()
            self.sessions_short += self._needed_kwh() > 1e-6
            if self._needed_kwh() > 1e-6:
                self.missed.append((self.session, self._needed_kwh()))
            self.session = None
        if self.session is None and self.upcoming and self.upcoming[0].arrival <= now:
            self.session = self.upcoming.pop(0)
            self.delivered_kwh = 0.0
        self._kw = 0.0
        if self.session is not None and self.enabled:
            limit = min(self.rated_kw, self.session.max_kw, float(self.inputs["power_limit_kw"]))
            self._kw = max(0.0, min(limit, self._needed_kwh() * 3600.0 / dt_s))
            self.delivered_kwh += self._kw * dt_s / 3600.0

    def _needed_kwh(self) -> float:
        return max(0.0, self.session.energy_kwh - self.delivered_kwh) if self.session else 0.0

    def values(self) -> dict[str, Value]:
        departure_in_s = 0.0
        if self.session is not None and self._now is not None:
            departure_in_s = max(0.0, (self.session.departure - self._now).total_seconds())
        return {
            "connected": self.session is not None,
            "energy_needed_kwh": self._needed_kwh(),
            "departure_in_s": departure_in_s,
            "power_limit_kw": float(self.inputs["power_limit_kw"]),
            **self._contract_values(),
        }

    def violations(self) -> dict[str, float]:
        return {"shortfall_kwh": self.shortfall_kwh}
