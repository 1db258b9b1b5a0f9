"""Work a run leaves at the end of the scored day, so every run is scored on the same work.

A control that pushes a batch or a charging session past the end of the day has not saved
its energy, only moved it out of the score. What is left is therefore carried: a furnace's
running batch's remainder and its queued batches released before the end (at their kW), a
charger's session energy still needed, and a store that holds less than it did at the start
(the energy to refill it). The carried energy is charged at the price of the moment after
the end. A carried batch meets its deadline if the furnace, running its leftover work back
to back from the end, finishes it in time; a session gets what fits before its departure,
the rest is a charging shortfall.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from .equipment import BatchFurnace, Charger, Machine

__all__ = ["Carried", "Leftover", "carried_work", "left_at"]


@dataclass(frozen=True)
class Leftover:
    """One piece of unfinished work at a moment."""

    machine: str
    kind: Literal["batch", "session"]
    energy_kwh: float
    power_kw: float
    """The power it runs at: a batch's kW, a session's most the car and the charger take."""
    deadline: datetime
    """A batch's deadline, a session's departure."""


@dataclass(frozen=True)
class Carried:
    energy_kwh: float
    """What runs after the end and fits before its deadline or departure."""
    deadlines_missed: int
    """Carried batches that cannot finish by their deadline."""
    shortfall_kwh: float
    """Session energy that cannot be delivered before departure."""


def left_at(machines: Mapping[str, Machine], at: datetime) -> list[Leftover]:
    """Every piece of work released (arrived) before `at` and not done by then."""
    left: list[Leftover] = []
    for name, machine in machines.items():
        if isinstance(machine, BatchFurnace):
            active = machine.active
            if active is not None and machine.remaining_s > 0:
                kwh = active.kw * machine.remaining_s / 3600.0
                left.append(Leftover(name, "batch", kwh, active.kw, active.deadline))
            for batch in sorted(machine.queue, key=lambda b: b.deadline):
                if batch.release < at:
                    kwh = batch.kw * batch.duration_s / 3600.0
                    left.append(Leftover(name, "batch", kwh, batch.kw, batch.deadline))
        elif isinstance(machine, Charger):
            sessions = [s for s in machine.upcoming if s.arrival < at]
            needed = [s.energy_kwh for s in sessions]
            if machine.session is not None:
                sessions.insert(0, machine.session)
                needed.insert(0, machine.session.energy_kwh - machine.delivered_kwh)
            for session, kwh in zip(sessions, needed, strict=True):
                if kwh > 1e-9:
                    kw = min(machine.rated_kw, session.max_kw)
                    left.append(Leftover(name, "session", kwh, kw, session.departure))
    return left


def carried_work(left: list[Leftover], end: datetime) -> Carried:
    """What the leftovers cost after `end`: each furnace runs its batches back to back, in
    the order given (the running one first, then by deadline); sessions charge at once."""
    energy, missed, short = 0.0, 0, 0.0
    free_at: dict[str, datetime] = {}
    for item in left:
        if item.kind == "batch":
            start = free_at.get(item.machine, end)
            finish = start + timedelta(hours=item.energy_kwh / item.power_kw)
            free_at[item.machine] = finish
            energy += item.energy_kwh
            missed += finish > item.deadline + timedelta(seconds=1)
        else:
            room_h = max(0.0, (item.deadline - end).total_seconds() / 3600.0)
            fits = min(item.energy_kwh, item.power_kw * room_h)
            energy += fits
            short += item.energy_kwh - fits
    return Carried(energy, missed, short)
