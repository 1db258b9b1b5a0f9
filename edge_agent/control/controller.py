"""The control cycle: the process image in, actions through the guard, every action explained.

Every `cycle_s` the controller reads the incomer and the loads from the process image, feeds
the billing window, asks the plan (re-made each slot) what the deferrable loads should do
now, and lets the limiter, which has the last word, hold the demand. Every action goes
through the guard, is logged with its reason, and is kept for the next site summary. When
it stops (the agent stopping, a crash unwinding) it returns every load to its safe state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from edge_agent.clock import Clock
from edge_agent.config.schema import SiteConfig
from edge_agent.energy.tariff import cheapest, next_change, price_at
from edge_agent.model import PointId, Quality, Reading
from edge_agent.northbound.commands import ControlInputs, DemandResponse
from edge_agent.process_image import ProcessImage

from .config import ControlConfig
from .guard import Guard, Writer
from .limiter import DemandLimiter, LimiterInputs
from .loads import Action, LoadState, Why
from .scheduling import Scheduler
from .window import Projection, WindowTracker

__all__ = ["ControlReport", "Controller", "Refusals"]

log = logging.getLogger(__name__)

SAFE_STATE_TIMEOUT_S = 5.0

POWER_SMOOTHING_S = 60.0


@dataclass(slots=True)
class _Event:
    """A demand-response event as it ran: its baseline, and the window averages during it."""

    request: DemandResponse
    baseline_kw: float | None = None
    demand_kw: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ControlReport:
    """What the site summary carries about control for one interval."""

    mode: str
    limit_kw: float
    limit_source: str
    seconds: dict[str, dict[str, float]]
    states: dict[str, str]
    actions: list[Action]
    events: list[dict[str, object]]


class Refusals:
    """A refusal is kept once, not every cycle the same decision is refused by the same
    rule: "its minimum on time: 40 s of 120 s", then 50 s, 60 s ... is one refusal."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, bool, str] | None] = {}
        """Load -> the decision last refused it and the rule (None: its last was done)."""

    def news(self, acted: Action) -> bool:
        """Whether the action is worth keeping."""
        key = None
        if acted.refused is not None:
            key = (acted.kind, acted.on, re.sub(r"\d+", "#", acted.refused))
        new = key is None or self._last.get(acted.load) != key
        self._last[acted.load] = key
        return new


class Controller:
    def __init__(
        self,
        config: SiteConfig,
        clock: Clock,
        image: ProcessImage,
        write: Writer,
        inputs: ControlInputs,
    ) -> None:
        assert config.control is not None
        self.site = config
        self.config: ControlConfig = config.control
        self.clock = clock
        self.image = image
        self.inputs = inputs
        zone = ZoneInfo(config.site.timezone)
        self.guard = Guard(
            self.config,
            config.devices,
            write,
            advisory=self.config.mode == "advisory",
            zone=zone,
        )
        self.limiter = DemandLimiter(self.config, zone=zone)
        self.meter_known = asyncio.Event()
        """Set at the incomer's first good reading: what a demand-response answer waits for."""
        self._news = Refusals().news
        self.window = WindowTracker(self.config.window)
        self.scheduler = Scheduler(config, self.guard.states)
        meter = next(d for d in config.devices if d.name == self.config.meter)
        roles = {p.role: f"{meter.name}/{n}" for n, p in meter.points.items() if p.role}
        self._power_point: PointId | None = roles.get("active_power_kw")
        self._energy_point: PointId | None = roles.get("import_energy_kwh")
        self._events: dict[str, _Event] = {}
        self._actions: list[Action] = []
        self.last_actions: list[Action] = []
        """The most recent actions, for the live view."""
        self.history: deque[Action] = deque(maxlen=20_000)
        """Every action of about the last day, for a bench's scoring and for debugging."""
        self.limit_kw = self.config.limit_kw
        self.limit_source = "site limit"
        self.projected_kw: float | None = None
        self._last_cycle: datetime | None = None
        self.peak_today_kw = 0.0
        """The highest finished billing window of the site's local day, kW."""
        self._window: tuple[datetime, float] | None = None
        """The window being tracked and its latest projection."""
        self._zone = ZoneInfo(config.site.timezone)
        self._peak_day: date | None = None
        self._smooth: tuple[datetime, float] | None = None
        self._next_price: tuple[datetime, float] | None = None
        """The tariff's next change of price and the price from then."""
        self._cheapest = cheapest(config.tariff)
        """The tariff's lowest price (None: one price): a reload does not change the tariff."""

    # The loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        cycle = self.config.cycle_s
        beat_every = max(1, round(self.config.heartbeat_s / cycle))
        now = self.clock.now()
        tick = datetime.fromtimestamp(math.ceil(now.timestamp() / cycle) * cycle, now.tzinfo)
        count = 0
        try:
            while True:
                await self.clock.sleep_until(tick)
                await self.cycle(self.clock.now())
                if count % beat_every == 0:
                    await self.guard.heartbeat()
                count += 1
                tick += timedelta(seconds=cycle)
        finally:
            await self._return_to_safety()

    async def _return_to_safety(self) -> None:
        try:
            async with asyncio.timeout(SAFE_STATE_TIMEOUT_S):
                for action in await self.guard.safe_state(self.clock.now()):
                    self._keep(action)
        except TimeoutError:
            log.error("loads not all returned to their safe state in %.0f s", SAFE_STATE_TIMEOUT_S)

    async def cycle(self, now: datetime) -> list[Action]:
        """One control cycle; the actions taken (or refused), each with its reason."""
        snapshot = self.image.snapshot(now)
        done = self._observe(snapshot, now)
        await self._follow_advisory(now, done)
        for action in self._overrides(now):
            if self._news(acted := await self.guard.execute(action)):
                done.append(acted)
        power = self._good(snapshot, self._power_point)
        projection = None
        if power is not None:
            self.meter_known.set()
            self.window.update(now, power, self._good(snapshot, self._energy_point))
            projection = self.window.projection(now, self._smoothed(now, power))
            self.projected_kw = projection.projected_kw
        else:
            self.window.forget()
            self.projected_kw = None
            self._smooth = None
        self.limit_kw, self.limit_source = self._limit(now)
        _, price = price_at(self.site.tariff, now, self.site.site.timezone)
        self._track_peak(now, projection)
        self.scheduler.meter_kw = power
        decided = await self.scheduler.step(
            now,
            snapshot,
            self.limit_kw,
            projection=projection,
            limits=self.limit_profile,
            peak_so_far_kw=self.peak_today_kw,
        )
        inputs = LimiterInputs(
            now,
            projection,
            self.limit_kw,
            price,
            binding=self.limit_source,
            slack_s=self.scheduler.slack_s,
            next_price=self._next_change(now, price),
            finish_s=self.scheduler.finish_s,
            cheapest_vnd_per_kwh=self._cheapest,
            peak_today_kw=self.peak_today_kw,
        )
        decided += self.limiter.step(inputs, self.guard.states.values())
        final = {a.load: a for a in decided}  # the limiter comes last: it has the last word
        for action in final.values():
            if self._news(acted := await self.guard.execute(action)):
                done.append(acted)
        for action in done:
            self._keep(action)
        elapsed = 0.0 if self._last_cycle is None else (now - self._last_cycle).total_seconds()
        self._last_cycle = now
        for state in self.guard.states.values():
            state.accrue(elapsed)
        return done

    # What the cycle reads ------------------------------------------------------------------------

    def _observe(self, snapshot: dict[PointId, Reading], now: datetime) -> list[Action]:
        """Loads' power, band values and reachability from the image; a lost device's loads
        are taken as back in their safe state."""
        actions = []
        for state in self.guard.states.values():
            config = state.config
            command = snapshot.get(f"{config.device}/{config.command}")
            reachable = command is not None and command.quality is Quality.GOOD
            if command is None:
                reachable = state.available  # not read yet: keep what we believed
            if state.available and not reachable:
                actions += self.guard.device_lost(config.device, now)
            elif not state.available and reachable:
                log.info("%s: device %s answers again", state.name, config.device)
                self.guard.device_back(config.device)
            state.power_kw = (
                self._good(snapshot, f"{config.device}/{config.power}") if config.power else None
            )
            if config.band is not None:
                state.band_value = self._good(snapshot, f"{config.device}/{config.band.point}")
                state.observe_band(now)
        return actions

    def _overrides(self, now: datetime) -> list[Action]:
        """The park's overrides, acted on: each load on an overridden device is driven to
        the state asked and held there until the override ends, then handed back to the
        controller (back on, as no control would have it). The guard's minimum on/off times
        still apply, and the process band and maximum off time still win (the limiter's
        forced restores); an override never switches a load off near its band."""
        actions = []
        for device, override in list(self.inputs.overrides.items()):
            ended = override.until <= now
            if ended:
                del self.inputs.overrides[device]
                self.guard.overrides.pop(device, None)
            else:
                self.guard.overrides[device] = (override.state == "on", override.until)
            for state in self.guard.states.values():
                if state.config.device != device or not state.available:
                    continue
                if ended:
                    if state.held_by != "override":
                        continue
                    if state.on:
                        state.held_by = None  # nothing to write: back to the controller
                        continue
                    why = f"the park's override {override.id} has ended: back to the controller"
                    actions.append(self._override_action(now, state, "restore", True, why))
                    continue
                wanted = override.state == "on"
                if state.on == wanted:
                    state.held_by = "override"  # already there: held, nothing to write
                    continue
                if not wanted and self.limiter.band_near(state, 2.0):
                    continue  # the process first: the band would bring it straight back
                why = (
                    f"the park's override {override.id} holds {state.name} {override.state} "
                    f"until {override.until.isoformat()}"
                )
                actions.append(self._override_action(now, state, "override", wanted, why))
        return actions

    def _override_action(
        self, now: datetime, state: LoadState, kind: Why, on: bool, why: str
    ) -> Action:
        return Action(
            at=now,
            load=state.name,
            kind=kind,
            on=on,
            reason=f"{'on' if on else 'off'} {state.name}: {why}",
            binding="override",
            projected_kw=self.projected_kw,
            limit_kw=self.limit_kw,
            price_vnd_per_kwh=None,
            priority=state.config.priority,
            expected_kwh=0.0,
            expected_vnd=0.0,
        )

    async def _follow_advisory(self, now: datetime, done: list[Action]) -> None:
        """The park switched advisory mode: going advisory first returns the loads to safety."""
        wanted = self.config.mode == "advisory" or self.inputs.advisory
        if wanted == self.guard.advisory:
            return
        if wanted:
            done += await self.guard.safe_state(now)
        self.guard.advisory = wanted
        log.info("control is now %s", "advisory (no writes)" if wanted else "active")

    @staticmethod
    def _good(snapshot: dict[PointId, Reading], point: PointId | None) -> float | None:
        reading = snapshot.get(point) if point is not None else None
        if reading is None or reading.quality is not Quality.GOOD or reading.value is None:
            return None
        return float(reading.value)

    # Demand response --------------------------------------------------------------------------

    def _limit(self, now: datetime) -> tuple[float, str]:
        """The limit in force: the site's, or the lowest an active event sets."""
        limit, source = self.config.limit_kw, "demand limit"
        for request in self.inputs.demand_response.values():
            end = request.start + timedelta(seconds=request.duration_s)
            event = self._events.setdefault(request.id, _Event(request))
            if not request.start <= now < end:
                continue
            if event.baseline_kw is None:
                event.baseline_kw = self._baseline_kw()
            if self.projected_kw is not None:
                event.demand_kw.append(self.projected_kw)
            asked = self._asked_kw(request)
            if asked < limit:
                limit, source = asked, f"demand response {request.id}"
        return limit, source

    def _next_change(self, now: datetime, price: float) -> tuple[datetime, float] | None:
        """The tariff's next change of price (for the stores that may ride to a fall, and
        the sheds whose making-up a rise would make dearer); looked up again only once the
        change it found has come."""
        if self._next_price is None or self._next_price[0] <= now:
            self._next_price = next_change(self.site.tariff, now, self.site.site.timezone) or (
                now + timedelta(days=1),
                price,
            )
        return self._next_price if self._next_price[1] != price else None

    def _smoothed(self, now: datetime, power_kw: float) -> float:
        """The power the window's rest is projected on: a rise is believed over about a
        minute (POWER_SMOOTHING_S), so that a moulder's shot or a compressor loading does
        not shed a load whose rebound then costs more than the spike; a fall at once, so
        that a shed shows in the next cycle and no second load is shed for the same need.
        The energy so far is still the meter's."""
        if self._smooth is None:
            self._smooth = (now, power_kw)
            return power_kw
        then, value = self._smooth
        share = min(1.0, (now - then).total_seconds() / POWER_SMOOTHING_S)
        value = min(power_kw, value + share * (power_kw - value))
        self._smooth = (now, value)
        return value

    def _track_peak(self, now: datetime, projection: Projection | None) -> None:
        """A window's last projection is its average: the day's peak is the highest."""
        day = now.astimezone(self._zone).date()
        if day != self._peak_day:
            self._peak_day, self.peak_today_kw = day, 0.0
        if projection is None:
            return
        if self._window is not None and self._window[0] != projection.window_start:
            self.peak_today_kw = max(self.peak_today_kw, self._window[1])
        self._window = (projection.window_start, projection.projected_kw)

    def limit_profile(self, start: datetime, slots: int, slot_s: int) -> tuple[float, ...]:
        """The limit in force over each slot from `start`: the site's, and the lowest an
        accepted demand-response event sets over any part of the slot, so that the plan
        makes room before the event begins rather than when it does."""
        limits = []
        for i in range(slots):
            begin = start + timedelta(seconds=i * slot_s)
            end = begin + timedelta(seconds=slot_s)
            limit = self.config.limit_kw
            for request in self.inputs.demand_response.values():
                over = request.start + timedelta(seconds=request.duration_s)
                if request.start < end and begin < over:
                    limit = min(limit, self._asked_kw(request))
            limits.append(limit)
        return tuple(limits)

    def _asked_kw(self, request: DemandResponse) -> float:
        """The event's limit: given, or the baseline (measured when it began; before that,
        the demand now) less the reduction asked."""
        if request.limit_kw is not None:
            return request.limit_kw
        event = self._events.get(request.id)
        baseline = event.baseline_kw if event is not None else None
        if baseline is None:
            baseline = self.projected_kw if self.projected_kw is not None else self.config.limit_kw
        return baseline - (request.reduction_kw or 0.0)

    def _baseline_kw(self) -> float | None:
        """The demand the event is measured against: the window average just before it."""
        return self.projected_kw

    def assess(self, request: DemandResponse, now: datetime) -> tuple[bool, float, str]:
        """Whether the site can hold the event's target over the event's whole window, and
        the kW it can take off: each sheddable load for the share of the event its sheds
        left can cover (a shed lasts as long as its process allows, `expected_hold_s`),
        and each deferrable load that is not running a batch it cannot interrupt. A load
        whose sheds are spent today offers nothing, whatever it draws now."""
        duration = float(request.duration_s)
        today = now.astimezone(self._zone).date()
        shed_kw = 0.0
        for state in self.guard.states.values():
            config = state.config
            if not (state.on and state.available) or config.critical:
                continue
            if config.sheddable and config.deferrable is None:
                cover = min(1.0, state.expected_hold_s() * state.sheds_left(today) / duration)
                shed_kw += state.expected_kw() * cover
            elif config.deferrable is not None and config.deferrable.kind == "energy":
                shed_kw += state.expected_kw()  # a session pauses for the event
        deferred_kw = self._planned_in(request)
        flexible = round(shed_kw + deferred_kw, 1)
        now_kw = self.projected_kw
        if now_kw is None:
            return False, flexible, "the incomer cannot be read now; the demand is unknown"
        target = self._asked_kw(request)
        needed = max(0.0, now_kw - target)
        can = flexible >= needed
        detail = (
            f"demand now {now_kw:.0f} kW, target {target:.0f} kW: {needed:.0f} kW to take off "
            f"over {duration / 60:.0f} min; {shed_kw:.0f} kW can be shed for the event's "
            f"length with the sheds left today, {deferred_kw:.0f} kW of planned work moved "
            "out of it"
        )
        if not can:
            detail += f"; can deliver {flexible:.0f} kW of the {needed:.0f} kW asked"
        return can, flexible, detail

    def _planned_in(self, request: DemandResponse) -> float:
        """The largest planned deferrable load inside the event window, kW: batches not yet
        started that the plan would run then, which the next plan moves out."""
        plan = self.scheduler.plan
        slot = self.scheduler.plan_slot
        if plan is None or slot is None:
            return 0.0
        slot_s = self.config.plan_slot_s
        first = max(0, int((request.start - slot).total_seconds() // slot_s))
        last = int((request.start - slot).total_seconds() + request.duration_s) // slot_s
        best = 0.0
        loads = {load.name: load for load in self.scheduler.jobs}
        for t in range(first, last + 1):
            kw = sum(
                loads[name].power_kw
                for name, on in plan.running.items()
                if name in loads and t < len(on) and on[t] and loads[name].running_for == 0
            )
            best = max(best, kw)
        return best

    # Reporting --------------------------------------------------------------------------------

    def _keep(self, action: Action) -> None:
        self._actions.append(action)
        self.history.append(action)
        self.last_actions = [*self.last_actions[-9:], action]

    def report(self) -> ControlReport:
        """What happened since the last report; the counters start again."""
        actions, self._actions = self._actions, []
        seconds = {}
        states = {}
        for name, state in self.guard.states.items():
            seconds[name] = {k: round(v, 1) for k, v in state.seconds.items()}
            state.seconds = dict.fromkeys(state.seconds, 0.0)
            states[name] = (
                "unreachable"
                if not state.available
                else "on"
                if state.on
                else f"off ({state.held_by})"
            )
        events: list[dict[str, object]] = []
        for event_id, event in self._events.items():
            achieved = max(event.demand_kw) if event.demand_kw else None
            events.append(
                {
                    "id": event_id,
                    "baseline_kw": event.baseline_kw,
                    "max_projected_kw": achieved,
                    "delivered_kw": None
                    if achieved is None or event.baseline_kw is None
                    else round(event.baseline_kw - achieved, 1),
                }
            )
        return ControlReport(
            mode="advisory" if self.guard.advisory else "active",
            limit_kw=self.limit_kw,
            limit_source=self.limit_source,
            seconds=seconds,
            states=states,
            actions=actions,
            events=events,
        )
