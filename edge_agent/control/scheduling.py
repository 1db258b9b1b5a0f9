"""Layer 2 in the cycle: the deferrable loads' plan, re-made each slot, turned into actions.

The devices say what is waiting (a furnace's next batch and its deadline, a charger's session
and the energy it still needs); the planner places that work in the cheapest slots under the
limit; in the current slot a planned load may start and any other is held (deferred). A batch
that is running is never touched: it cannot be interrupted. A plan is re-made at every slot
boundary, and when the work waiting changes (a new batch, a car plugged in).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from edge_agent.config.schema import SiteConfig
from edge_agent.energy.tariff import price_at
from edge_agent.model import PointId, Quality, Reading

from .forecast import BaseLoadForecast, ErrorSummary, PvForecast
from .loads import Action, LoadState

if TYPE_CHECKING:
    from .planner import DeferrableLoad, Plan, Planner
    from .window import Projection

__all__ = ["PEAK_VND_PER_KW", "Scheduler"]


def _minute(now: datetime, seconds_from_now: float) -> int:
    """A moment as whole minutes since the epoch: a job's deadline as its identity."""
    return round((now.timestamp() + seconds_from_now) / 60)


log = logging.getLogger(__name__)

PEAK_VND_PER_KW = 20_000.0
"""What the plan pays per kW of a window above the day's highest so far: about a tenth of
EVN's two-part capacity charge for a month (235,414 VND/kW at 22-110 kV), enough that work
fills the day's valleys before it makes a new peak, not so much that a deadline gives way."""
SHORT_KWH = 0.01
"""Energy a plan leaves undone that counts as a job it cannot finish (solver tolerance)."""
START_LAG_S = 120.0
"""How long a batch planned to start at a slot's beginning may take to begin: the control
cycle that sees the slot start, the write, the sequencer's own scan. A deadline is planned
this much early, so that a batch whose run ends on it to the second is not finished late."""


class Scheduler:
    def __init__(self, config: SiteConfig, states: Mapping[str, LoadState]) -> None:
        assert config.control is not None
        self.site = config
        self.control = config.control
        self.states = states
        self.deferrable = [s for s in states.values() if s.config.deferrable is not None]
        self._planner: Planner | None = None
        zone = ZoneInfo(config.site.timezone)
        slot_s = self.control.plan_slot_s
        self.base_forecast = BaseLoadForecast(zone=zone, slot_s=slot_s)
        """The site's load besides the loads the agent moves, learned per day type and slot."""
        self.pv_forecast = PvForecast(
            latitude_deg=config.site.latitude_deg,
            longitude_deg=config.site.longitude_deg,
            zone=zone,
            slot_s=slot_s,
        )
        self._generation: list[PointId] = [f"{g.device}/{g.power}" for g in self.control.generation]
        self.plan: Plan | None = None
        self.jobs: tuple[DeferrableLoad, ...] = ()
        self._prices: tuple[float, ...] = ()
        """The last plan's prices per slot, and one slot past its horizon."""
        """The jobs the plan was made for."""
        self._plan_slot: datetime | None = None
        self._signature: tuple[object, ...] = ()
        self.meter_kw: float | None = None
        self._idle: dict[str, str] = {}
        """Loads whose device says, readably, that nothing waits: by kind."""
        self._active: dict[str, bool] = {}
        """Batch loads whose device says a batch is running now."""
        self._projection: Projection | None = None
        self._started_kw = 0.0
        """The power of the starts made in this cycle so far."""
        self._limit_kw = 0.0
        self._limits: Callable[[datetime, int, int], tuple[float, ...]] | None = None
        self._peak_so_far_kw = 0.0
        self.slack_s: dict[str, float] = {}
        """Energy loads' slack: seconds their session may still stay off and be done by
        its departure at the rate it charges."""
        self.finish_s: dict[str, float] = {}
        """Energy loads' charging left at the rate they charge, s: what a shed of theirs
        is made up after."""
        self._keys: dict[str, tuple[object, ...]] = {}
        """Each job's identity across cycles (its device, deadline and duration)."""
        self._due: dict[str, datetime] = {}
        """Each batch's own deadline, for the reasons: the plan's is START_LAG_S earlier."""
        self._released: dict[tuple[object, ...], datetime] = {}
        """When each job would have started with the devices left to themselves: the moment
        it was first seen, or its sequencer's previous batch's end then."""
        self._rate: dict[str, float] = {}
        """The power each energy load was last seen charging at (kW): a vehicle takes less
        than the charger's rating, and a plan at the rating would leave it short."""
        self._waiting: dict[str, datetime] = {}
        """Loads whose planned start waits for the window, by the slot it was logged in."""

    async def step(
        self,
        now: datetime,
        snapshot: Mapping[PointId, Reading],
        limit_kw: float,
        *,
        projection: Projection | None = None,
        limits: Callable[[datetime, int, int], tuple[float, ...]] | None = None,
        peak_so_far_kw: float = 0.0,
    ) -> list[Action]:
        """The deferrable loads' actions now. `limits(slot, slots, slot_s)` is the limit in
        force per slot of the horizon (the site's, lowered where an accepted demand-response
        event falls), so the plan makes room before an event begins; `projection` gates a
        start that would take this window over; `peak_so_far_kw` is the day's highest window
        yet, which the plan pays to exceed (a new peak is what no control would not have)."""
        if not self.deferrable:
            return []
        self._observe(now, snapshot)
        self._projection = projection
        self._limit_kw = limit_kw
        self._limits = limits
        self._peak_so_far_kw = peak_so_far_kw
        if self._planner is None:
            # HiGHS and NumPy cost ~50 MB: loaded only by sites with deferrable loads.
            from .planner import Planner

            self._planner = Planner(time_limit_s=self.control.plan_time_limit_s)
        slot_s = self.control.plan_slot_s
        slot = datetime.fromtimestamp(now.timestamp() // slot_s * slot_s, UTC)
        self._idle = {}
        self._active = {}
        self.slack_s = {}
        self.finish_s = {}
        self._keys = {}
        self._due = {}
        work = {s.name: self._work(s, snapshot, slot, now) for s in self.deferrable}
        signature = tuple(
            (
                w.name,
                w.batch_slots,
                w.earliest,
                w.deadline,
                round(w.energy_kwh),
                w.running_for,
                round(w.power_kw, 1),
            )
            for jobs in work.values()
            for w in jobs
        )
        if self._plan_slot != slot or signature != self._signature:
            await self._replan(slot, work, snapshot, limit_kw)
            self._signature = signature
        return self._follow(now, slot, work)

    # What is waiting ------------------------------------------------------------------------

    def _work(
        self,
        state: LoadState,
        snapshot: Mapping[PointId, Reading],
        slot: datetime,
        now: datetime,
    ) -> list[DeferrableLoad]:
        """What the load's device says waits, as the plan's jobs: for a batch sequencer the
        running batch (locked: it cannot be interrupted, but it holds the furnace) and every
        batch of its queue, in the sequencer's order; for a charger, its session."""
        spec = state.config.deferrable
        assert spec is not None
        device = state.config.device

        def value(point: str | None) -> float | None:
            if point is None:
                return None
            reading = snapshot.get(f"{device}/{point}")
            if reading is None or reading.quality is not Quality.GOOD or reading.value is None:
                return None
            return float(reading.value)

        slot_s = self.control.plan_slot_s
        into_slot = (now - slot).total_seconds()
        horizon = self._slots()

        def slot_of(seconds_from_now: float) -> int:
            return max(0, min(horizon, math.floor((into_slot + seconds_from_now) / slot_s)))

        from .planner import DeferrableLoad

        if spec.kind == "energy":
            session = self._session(
                state, now, value(spec.connected), value(spec.energy_needed), value(spec.deadline)
            )
            if session is None:
                return []
            deadline_in = value(spec.deadline)
            return [
                DeferrableLoad(
                    name=state.name,
                    power_kw=session[0],
                    energy_kwh=session[1],
                    # A slot in hand before the departure: the plan's slots are coarse, and
                    # a start may wait minutes for the window (the gate) or a minimum off.
                    deadline=None if deadline_in is None else max(1, slot_of(deadline_in) - 1),
                    priority=state.config.priority,
                )
            ]
        active, waiting = value(spec.active), value(spec.waiting)
        jobs: list[DeferrableLoad] = []
        earliest = 0
        if active:
            self._active[state.name] = True
            remaining = value(spec.remaining) or 0.0
            left = max(1, math.ceil((into_slot + remaining) / slot_s))
            jobs.append(
                DeferrableLoad(
                    name=f"{state.name}#running",
                    power_kw=value(spec.batch_power) or state.config.rated_kw,
                    batch_slots=min(left, horizon) + 1,
                    running_for=1,
                    priority=state.config.priority,
                )
            )
            earliest = slot_of(remaining)
        elif active is not None and waiting == 0:
            self._idle[state.name] = "batch"
        if not waiting:
            return jobs
        if spec.queue is not None:
            entries = [spec.queue.points(k) for k in range(1, spec.queue.length + 1)]
        else:  # the next batch only; its power is the batch power point's when idle
            entries = [(spec.duration, spec.deadline, None if active else spec.batch_power)]
        before: str | None = None
        for k, (duration_point, deadline_point, power_point) in enumerate(entries, start=1):
            duration = value(duration_point)
            if not duration or k > waiting:
                break
            slots = max(1, math.ceil(duration / slot_s))
            deadline_in = value(deadline_point)
            name = f"{state.name}#{k}"
            if deadline_in is not None:
                self._keys[name] = (state.name, _minute(now, deadline_in), round(duration))
                self._due[name] = now + timedelta(seconds=deadline_in)
            jobs.append(
                DeferrableLoad(
                    name=name,
                    power_kw=value(power_point) or state.config.rated_kw,
                    batch_slots=min(slots, horizon),
                    earliest=min(earliest, horizon - 1),
                    deadline=None
                    if deadline_in is None
                    else max(slot_of(deadline_in - START_LAG_S), earliest + slots),
                    priority=state.config.priority,
                    after=before,
                )
            )
            before = name
        return jobs

    def _session(
        self,
        state: LoadState,
        now: datetime,
        connected: float | None,
        needed: float | None,
        deadline_in: float | None,
    ) -> tuple[float, float] | None:
        """A charger's session as (kW, kWh) to plan, or None; its slack for the limiter."""
        rate = self._charging_rate(state)
        if connected and needed and deadline_in is not None:
            # Even a remnant too small to plan has its slack: the limiter must not shed a
            # vehicle minutes before it leaves and strand it short.
            self.slack_s[state.name] = deadline_in - needed / rate * 3600.0
        if connected and needed:
            self.finish_s[state.name] = needed / rate * 3600.0
        if not connected or not needed or needed < 0.1:
            if connected is not None:
                self._idle[state.name] = "energy"
            return None
        if deadline_in is not None:
            self._keys[state.name] = (state.name, _minute(now, deadline_in))
        return rate, needed

    def _observe(self, now: datetime, snapshot: Mapping[PointId, Reading]) -> None:
        """Feed the forecasts: the meter less every controlled load's measured power, with
        the measured generation added back, is the load no decision of ours changed."""
        if self.meter_kw is None:
            return
        generated = 0.0
        for point in self._generation:
            reading = snapshot.get(point)
            if reading is None or reading.quality is not Quality.GOOD or reading.value is None:
                return  # a profile learned on a guess would be wrong for weeks
            generated += abs(float(reading.value))
        controlled = sum(s.power_kw or 0.0 for s in self.states.values())
        self.base_forecast.observe(now, max(0.0, self.meter_kw - controlled + generated))
        if self._generation:
            self.pv_forecast.observe(now, generated)

    def forecasts(self) -> dict[str, ErrorSummary]:
        """Each forecast's error so far (kW), for the site summary and a bench's score; PV's
        only where the site measures generation."""
        errors = {"base_load": self.base_forecast.error.summary()}
        if self._generation:
            errors["pv"] = self.pv_forecast.error.summary()
        return errors

    @property
    def plan_slot(self) -> datetime | None:
        """The slot the plan's slot 0 is."""
        return self._plan_slot

    def _slots(self) -> int:
        return max(2, round(self.control.plan_horizon_h * 3600 / self.control.plan_slot_s))

    # Planning ---------------------------------------------------------------------------------

    async def _replan(
        self,
        slot: datetime,
        work: Mapping[str, list[DeferrableLoad]],
        snapshot: Mapping[PointId, Reading],
        limit_kw: float,
    ) -> None:
        from .planner import PlanProblem

        slots = self._slots()
        slot_s = self.control.plan_slot_s
        loads = tuple(job for jobs in work.values() for job in jobs)
        limits = (
            self._limits(slot, slots, slot_s) if self._limits is not None else (limit_kw,) * slots
        )
        prices = tuple(self._price(slot + timedelta(seconds=i * slot_s)) for i in range(slots + 1))
        self._prices = prices  # one slot past the horizon: what a wait would move work into
        prices = prices[:slots]
        base = self.base_forecast.forecast(slot, slots)
        if not any(base):  # nothing observed yet: the load now, less the loads we move
            base = (self._base_kw(snapshot),) * slots
        self.base_forecast.error.remember(slot, base)
        pv = self.pv_forecast.forecast(slot, slots)
        self.pv_forecast.error.remember(slot, pv)
        problem = PlanProblem(
            slot_s=slot_s,
            price_vnd_per_kwh=prices,
            base_kw=base,
            pv_kw=pv,
            limit_kw=limits,
            loads=loads,
            co2_kg_per_kwh=self.site.emissions.grid_kg_co2_per_kwh,
            # A window above the day's highest so far is a peak no control might not have
            # made: the plan pays for it, so work fills valleys rather than stacking.
            capacity_vnd_per_kw=PEAK_VND_PER_KW,
            peak_so_far_kw=self._peak_so_far_kw,
            # A missed deadline spoils a batch or strands a driver: a process constraint,
            # above every other price of the plan (the cost cap's included).
            shortfall_vnd_per_kwh=10_000_000.0,
        )
        # Never dearer than the devices left to themselves: the limit is held by the moves
        # that cost nothing more, and what no control would have paid is the cap.
        problem = dataclasses.replace(problem, cost_cap_vnd=self._released_cost(slot, loads) + 1.0)
        shift = 0
        if self._plan_slot is not None:
            shift = max(0, round((slot - self._plan_slot).total_seconds() / slot_s))
        assert self._planner is not None
        # HiGHS takes up to its time budget (more on a gateway's slower core): in a thread,
        # so that the pollers, the limiter's next cycle and the publisher go on meanwhile.
        # This cycle waits for the plan and applies it once; a simulated clock waits too
        # (the cycle has not parked), so a simulated day still repeats exactly.
        self.plan = await asyncio.to_thread(self._planner.replan, problem, shift=shift)
        self.jobs = loads
        self._plan_slot = slot
        if loads:
            log.debug(
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

    def _released_cost(self, slot: datetime, loads: tuple[DeferrableLoad, ...]) -> float:
        """What the jobs cost run as released, anchored where no control would have run
        them: each job's start is remembered the first time it is seen, so that holding
        the limit by a deferral in the morning does not make the afternoon's cap the
        deferred one's (the cap would drift later with every plan). A running batch costs
        the same in every plan."""
        slot_s = self.control.plan_slot_s
        hours = slot_s / 3600
        step = timedelta(seconds=slot_s)
        total = 0.0
        ends: dict[str, datetime] = {}
        seen = set()
        for job in loads:
            if job.running_for:
                left = (job.batch_slots or 0) - job.running_for
                total += (
                    sum(self._price(slot + i * step) for i in range(left)) * job.power_kw * hours
                )
                ends[job.name] = slot + left * step
                continue
            earliest = slot + job.earliest * step
            if job.after is not None and job.after in ends:
                earliest = max(earliest, ends[job.after])
            key = self._keys.get(job.name)
            start = earliest if key is None else self._released.setdefault(key, earliest)
            seen.add(key)
            if job.batch_slots is not None:
                total += (
                    sum(self._price(start + i * step) for i in range(job.batch_slots))
                    * job.power_kw
                    * hours
                )
                ends[job.name] = start + job.batch_slots * step
            else:
                # In whole slots at its power, as the plan counts a session's energy.
                slots = math.ceil(job.energy_kwh / (job.power_kw * hours) - 1e-9)
                total += sum(self._price(start + i * step) for i in range(slots)) * (
                    job.power_kw * hours
                )
        self._released = {k: v for k, v in self._released.items() if k in seen}
        return total

    def _price(self, moment: datetime) -> float:
        return price_at(self.site.tariff, moment, self.site.site.timezone)[1]

    def _base_kw(self, snapshot: Mapping[PointId, Reading]) -> float:
        """The site's load besides the deferrable loads, as it is now (persistence). A
        load's measured power counts whatever the agent commanded: a held furnace still
        runs the batch it had started."""
        meter = self.meter_kw or 0.0
        deferrable = sum(s.power_kw or 0.0 for s in self.deferrable)
        return max(0.0, meter - deferrable)

    # Following the plan ----------------------------------------------------------------------

    def _follow(
        self, now: datetime, slot: datetime, work: Mapping[str, list[DeferrableLoad]]
    ) -> list[Action]:
        actions = []
        plan = self.plan
        self._started_kw = 0.0  # what this cycle's starts add, which no reading shows yet
        for state in self.deferrable:
            queued = [job for job in work[state.name] if job.running_for == 0]
            running = self._active.get(state.name, False)
            if not queued:
                idle = self._idle.get(state.name)
                if (running or idle == "batch") and state.on and state.held_by is None:
                    # A sequencer left enabled starts a batch the moment one is released
                    # (or the running one ends), before any plan could place it: hold it.
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
            first = queued[0]
            if plan is None or first.name not in plan.running:
                continue
            if running:
                # The next batch starts when this one ends only if the plan puts it there.
                starts = plan.starts(first.name)
                wanted = bool(starts) and starts[0] <= first.earliest
            else:
                wanted = plan.running[first.name][0]
            # Work the plan cannot finish in time runs now, whatever the plan's prices made
            # of it (a remnant smaller than a slot's energy can look cheaper missed than run
            # over a cost cap): a deadline is a process constraint, never traded.
            late = plan.shortfall_kwh.get(first.name, 0.0) > SHORT_KWH and first.earliest == 0
            wanted = wanted or late
            if wanted and not state.on and state.held_by == "plan":
                action = self._start(now, slot, state, first, ungated=running, late=late)
                if action is not None:
                    actions.append(action)
                    self._started_kw += first.power_kw
            elif not wanted and state.on and state.held_by is None:
                actions.append(self._defer(now, slot, state, first, plan.running[first.name]))
        return actions

    def _start(
        self,
        now: datetime,
        slot: datetime,
        state: LoadState,
        load: DeferrableLoad,
        *,
        ungated: bool = False,
        late: bool = False,
    ) -> Action | None:
        """The plan's start, unless the window being billed would go over with it: then it
        waits (a plan made on a forecast must not make the peak no control would not have),
        except when its deadline could no longer be met otherwise, which the reason says."""
        price = self._price(now)
        due = self._deadline_text(slot, load)
        slot_s, inf = self.control.plan_slot_s, float("inf")
        projection = self._projection
        if not ungated:
            length = self.control.window.length_s
            target = self._limit_kw * self.control.target_share
            # With the incomer's reading unknown the window cannot be projected: a start
            # then is a start on the blind, which waits as one that would go over does.
            with_kw = ahead_kw = None
            if projection is not None:
                # With it, what the starts already made this cycle add: several batches
                # judged on one reading would each find the same room.
                adding_kw = self._started_kw + load.power_kw
                with_kw = (
                    projection.projected_kw
                    + adding_kw * min(projection.remaining_s, length) / length
                )
                # A batch that outlasts this window runs through the next one whole, beside
                # whatever runs now.
                ahead_kw = projection.power_kw + adding_kw
            if with_kw is None or with_kw > target:
                # Waiting may cost more (a queue pushed into the peak tariff): then it
                # starts, but never to make a window above the day's highest so far (or the
                # limit), a peak that no control might not have made: neither this window
                # nor the next, which the batch fills.
                peak_kw = max(self._peak_so_far_kw, self._limit_kw)
                new_peak = with_kw is None or max(with_kw, ahead_kw or 0.0) > peak_kw
                dearer = 0.0 if new_peak else self._delay_vnd(load)
                if (
                    not late
                    and dearer <= 0
                    and self._latest_start(load) > 0
                    and self.slack_s.get(state.name, inf) > slot_s
                ):
                    if self._waiting.get(state.name) != slot:
                        self._waiting[state.name] = slot
                        log.info("%s waits: %s", state.name, self._over_text(with_kw, target))
                    return None
                over = self._over_text(with_kw, target) + due
                if dearer > 0 and not late:
                    why = (
                        f"waiting would push its work (and the work queued after it) "
                        f"{dearer:,.0f} VND dearer, although {over}"
                    )
                    return self._action(now, state, "start", why, kwh=0.0, vnd=0.0)
                why = f"its deadline cannot be met otherwise, although {over}"
                return self._action(now, state, "start", why, kwh=0.0, vnd=0.0, binding="deadline")
        why = f"planned to run now at {price:,.0f} VND/kWh" + due
        return self._action(now, state, "start", why, kwh=0.0, vnd=0.0)

    @staticmethod
    def _over_text(with_kw: float | None, target_kw: float) -> str:
        """Why a start is over: the window it would make (None: the meter is unknown)."""
        if with_kw is None:
            return "the incomer's reading is unknown, so the window cannot be projected"
        return (
            f"starting now would take the window to {with_kw:.0f} kW against a target of "
            f"{target_kw:.0f} kW"
        )

    def _delay_vnd(self, load: DeferrableLoad) -> float:
        """What a slot's wait adds to the cost of `load` and of the work chained after it
        as the plan has them: a batch held back at the window's peak pushes its
        sequencer's whole queue later, at worst into the evening's peak tariff, which no
        control would not have paid. Positive: the wait is dearer."""
        plan = self.plan
        if plan is None:
            return 0.0
        hours = self.control.plan_slot_s / 3600
        prices = self._prices  # the plan's, from its slot 0, which is `slot`
        chain, names = [], {load.name}
        for job in self.jobs:  # a sequencer's jobs come in its order
            if job.name == load.name or job.after in names:
                chain.append(job)
                names.add(job.name)
        extra = 0.0
        for job in chain:
            on = plan.running.get(job.name, ())
            if job.name == load.name and on and not on[0]:
                on = (True, *on[1:])  # it would start now
            extra += sum(prices[t + 1] - prices[t] for t, run in enumerate(on) if run) * (
                job.power_kw * hours
            )
        return extra

    def _charging_rate(self, state: LoadState) -> float:
        """kW the session is planned at: what it draws while charging, else what the last
        session drew, else the rating."""
        if (
            state.on
            and state.power_kw is not None
            and state.power_kw > 0.05 * state.config.rated_kw
        ):
            self._rate[state.name] = min(state.power_kw, state.config.rated_kw)
        return self._rate.get(state.name, state.config.rated_kw)

    def _latest_start(self, load: DeferrableLoad) -> int:
        """Slots from now until the load must start to finish by its deadline."""
        end = load.deadline if load.deadline is not None else self._slots()
        if load.batch_slots is not None:
            return end - load.batch_slots
        hours = self.control.plan_slot_s / 3600
        return end - math.ceil(load.energy_kwh / (load.power_kw * hours) - 1e-9)

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
        end = self._due.get(load.name) or slot + timedelta(
            seconds=load.deadline * self.control.plan_slot_s
        )
        return f"; due by {end.astimezone(ZoneInfo(self.site.site.timezone)):%H:%M}"

    def _action(
        self,
        now: datetime,
        state: LoadState,
        kind: str,
        why: str,
        *,
        kwh: float,
        vnd: float,
        binding: str | None = None,
    ) -> Action:
        return Action(
            at=now,
            load=state.name,
            kind="start" if kind == "start" else "defer",
            on=kind == "start",
            reason=f"{kind} {state.name}: {why}",
            binding=binding or ("tariff" if kind == "defer" else "plan"),
            projected_kw=None,
            limit_kw=None,
            price_vnd_per_kwh=self._price(now),
            priority=state.config.priority,
            expected_kwh=round(kwh, 3),
            expected_vnd=round(vnd),
        )
