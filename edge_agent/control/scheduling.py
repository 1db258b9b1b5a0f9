"""Layer 2 in the cycle: the deferrable loads' plan, re-made each slot, turned into actions.

The devices say what is waiting (a furnace's next batch and its deadline, a charger's session
and the energy it still needs); the planner places that work in the cheapest slots under the
limit; in the current slot a planned load may start and any other is held (deferred). A batch
that is running is never touched: it cannot be interrupted. A plan is re-made at every slot
boundary, and when the work waiting changes (a new batch, a car plugged in).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from edge_agent.config.schema import SiteConfig
from edge_agent.energy.tariff import price_at
from edge_agent.model import PointId, Quality, Reading

from .loads import Action, LoadState

if TYPE_CHECKING:
    from .planner import DeferrableLoad, Plan, Planner

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, config: SiteConfig, states: Mapping[str, LoadState]) -> None:
        assert config.control is not None
        self.site = config
        self.control = config.control
        self.states = states
        self.deferrable = [s for s in states.values() if s.config.deferrable is not None]
        self._planner: Planner | None = None
        self.plan: Plan | None = None
        self._plan_slot: datetime | None = None
        self._signature: tuple[object, ...] = ()
        self.meter_kw: float | None = None
        self._idle: dict[str, str] = {}
        """Loads whose device says, readably, that nothing waits: by kind."""

    def step(
        self, now: datetime, snapshot: Mapping[PointId, Reading], limit_kw: float
    ) -> list[Action]:
        if not self.deferrable:
            return []
        if self._planner is None:
            # HiGHS and NumPy cost ~50 MB: loaded only by sites with deferrable loads.
            from .planner import Planner

            self._planner = Planner(time_limit_s=self.control.plan_time_limit_s)
        slot_s = self.control.plan_slot_s
        slot = datetime.fromtimestamp(now.timestamp() // slot_s * slot_s, UTC)
        self._idle = {}
        work = {s.name: self._work(s, snapshot, slot, now) for s in self.deferrable}
        signature = tuple(
            (name, None if w is None else (w.batch_slots, w.deadline, round(w.energy_kwh)))
            for name, w in work.items()
        )
        if self._plan_slot != slot or signature != self._signature:
            self._replan(slot, work, snapshot, limit_kw)
            self._signature = signature
        return self._follow(now, slot, work)

    # What is waiting ------------------------------------------------------------------------

    def _work(
        self,
        state: LoadState,
        snapshot: Mapping[PointId, Reading],
        slot: datetime,
        now: datetime,
    ) -> DeferrableLoad | None:
        spec = state.config.deferrable
        assert spec is not None
        device = state.config.device

        def value(point: str) -> float | None:
            reading = snapshot.get(f"{device}/{point}")
            if reading is None or reading.quality is not Quality.GOOD or reading.value is None:
                return None
            return float(reading.value)

        slot_s = self.control.plan_slot_s
        into_slot = (now - slot).total_seconds()
        horizon = self._slots()
        deadline_in = value(spec.deadline)
        deadline = (
            None
            if deadline_in is None
            else max(1, min(horizon, math.floor((into_slot + deadline_in) / slot_s)))
        )
        from .planner import DeferrableLoad

        if spec.kind == "batch":
            active, waiting, duration = (
                value(spec.active),
                value(spec.waiting),
                value(spec.duration),
            )
            if active:
                return None  # running: it cannot be interrupted, so there is nothing to plan
            if active is not None and waiting == 0:
                self._idle[state.name] = "batch"
            if not waiting or not duration:
                return None
            slots = max(1, math.ceil(duration / slot_s))
            return DeferrableLoad(
                name=state.name,
                power_kw=state.config.rated_kw,
                batch_slots=min(slots, horizon),
                deadline=None if deadline is None else max(deadline, slots),
                priority=state.config.priority,
            )
        connected, needed = value(spec.connected), value(spec.energy_needed)
        if not connected or not needed or needed < 0.1:
            if connected is not None:
                self._idle[state.name] = "energy"
            return None
        return DeferrableLoad(
            name=state.name,
            power_kw=state.config.rated_kw,
            energy_kwh=needed,
            deadline=deadline,
            priority=state.config.priority,
        )

    def _slots(self) -> int:
        return max(2, round(self.control.plan_horizon_h * 3600 / self.control.plan_slot_s))

    # Planning ---------------------------------------------------------------------------------

    def _replan(
        self,
        slot: datetime,
        work: Mapping[str, DeferrableLoad | None],
        snapshot: Mapping[PointId, Reading],
        limit_kw: float,
    ) -> None:
        from .planner import PlanProblem

        slots = self._slots()
        slot_s = self.control.plan_slot_s
        loads = tuple(w for w in work.values() if w is not None)
        prices = tuple(self._price(slot + timedelta(seconds=i * slot_s)) for i in range(slots))
        base = self._base_kw(snapshot)
        problem = PlanProblem(
            slot_s=slot_s,
            price_vnd_per_kwh=prices,
            base_kw=(base,) * slots,
            pv_kw=(0.0,) * slots,
            limit_kw=(limit_kw,) * slots,
            loads=loads,
            co2_kg_per_kwh=self.site.emissions.grid_kg_co2_per_kwh,
            # A missed deadline spoils a batch or strands a driver: a process constraint,
            # above the limit's price (the limiter still holds the window, load by load).
            shortfall_vnd_per_kwh=1_000_000.0,
        )
        shift = 0
        if self._plan_slot is not None:
            shift = max(0, round((slot - self._plan_slot).total_seconds() / slot_s))
        assert self._planner is not None
        self.plan = self._planner.replan(problem, shift=shift)
        self._plan_slot = slot
        if loads:
            log.info(
                "plan for %d deferrable loads: %s in %.0f ms, cost %.0f VND%s",
                len(loads),
                self.plan.status,
                self.plan.solve_s * 1000,
                self.plan.cost_vnd,
                "".join(
                    f", {name} short {kwh:.1f} kWh"
                    for name, kwh in self.plan.shortfall_kwh.items()
                    if kwh > 0.05
                ),
            )

    def _price(self, moment: datetime) -> float:
        return price_at(self.site.tariff, moment, self.site.site.timezone)[1]

    def _base_kw(self, snapshot: Mapping[PointId, Reading]) -> float:
        """The site's load besides the deferrable loads, as it is now (persistence)."""
        meter = self.meter_kw or 0.0
        deferrable = sum(s.power_kw or 0.0 for s in self.deferrable if s.on)
        return max(0.0, meter - deferrable)

    # Following the plan ----------------------------------------------------------------------

    def _follow(
        self, now: datetime, slot: datetime, work: Mapping[str, DeferrableLoad | None]
    ) -> list[Action]:
        actions = []
        plan = self.plan
        for state in self.deferrable:
            load = work[state.name]
            if load is None:
                idle = self._idle.get(state.name)
                if idle == "batch" and state.on and state.held_by is None:
                    # A sequencer left enabled starts a batch the moment it is released,
                    # before any plan could place it: hold it while nothing waits.
                    why = (
                        "no batch waits; holding the sequencer so that the next batch "
                        "released waits for the plan"
                    )
                    actions.append(self._action(now, state, "defer", why, kwh=0, vnd=0))
                elif idle == "energy" and state.held_by == "plan":
                    # No vehicle: back to local control, ready for the next one.
                    why = "no session to plan"
                    actions.append(self._action(now, state, "start", why, kwh=0, vnd=0))
                continue
            if plan is None or state.name not in plan.running:
                continue
            running = plan.running[state.name]
            if running[0] and not state.on and state.held_by == "plan":
                actions.append(self._start(now, slot, state, load))
            elif not running[0] and state.on and state.held_by is None:
                actions.append(self._defer(now, slot, state, load, running))
        return actions

    def _start(
        self, now: datetime, slot: datetime, state: LoadState, load: DeferrableLoad
    ) -> Action:
        price = self._price(now)
        why = f"planned to run now at {price:,.0f} VND/kWh" + self._deadline_text(slot, load)
        return self._action(now, state, "start", why, kwh=0.0, vnd=0.0)

    def _defer(
        self,
        now: datetime,
        slot: datetime,
        state: LoadState,
        load: DeferrableLoad,
        running: tuple[bool, ...],
    ) -> Action:
        slot_s = self.control.plan_slot_s
        price_now = self._price(now)
        hours = slot_s / 3600
        planned = [i for i, on in enumerate(running) if on]
        if planned:
            kwh = len(planned) * load.power_kw * hours
            if load.batch_slots is None:
                kwh = min(kwh, load.energy_kwh)
            later = sum(self._price(slot + timedelta(seconds=i * slot_s)) for i in planned) / len(
                planned
            )
            when = (slot + timedelta(seconds=planned[0] * slot_s)).astimezone(
                ZoneInfo(self.site.site.timezone)
            )
            why = (
                f"planned from {when:%H:%M} at {later:,.0f} VND/kWh instead of now at "
                f"{price_now:,.0f}" + self._deadline_text(slot, load)
            )
            saving = (price_now - later) * kwh
        else:
            kwh, saving = 0.0, 0.0
            why = "the plan has no room for it before its deadline under the limit"
        return self._action(now, state, "defer", why, kwh=kwh, vnd=saving)

    def _deadline_text(self, slot: datetime, load: DeferrableLoad) -> str:
        if load.deadline is None:
            return ""
        end = slot + timedelta(seconds=load.deadline * self.control.plan_slot_s)
        return f"; due by {end.astimezone(ZoneInfo(self.site.site.timezone)):%H:%M}"

    def _action(
        self, now: datetime, state: LoadState, kind: str, why: str, *, kwh: float, vnd: float
    ) -> Action:
        return Action(
            at=now,
            load=state.name,
            kind="start" if kind == "start" else "defer",
            on=kind == "start",
            reason=f"{kind} {state.name}: {why}",
            binding="tariff" if kind == "defer" else "plan",
            projected_kw=None,
            limit_kw=None,
            price_vnd_per_kwh=self._price(now),
            priority=state.config.priority,
            expected_kwh=round(kwh, 3),
            expected_vnd=round(vnd),
        )
