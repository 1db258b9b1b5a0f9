"""Layer 1: hold the billing window's demand under the limit, every cycle. It has the last word.

What a PLC demand controller does, with the reasons written down: project the window's
average from its energy so far and the power now; if it would end above the target, shed the
lowest-priority loads that may be shed, early enough that the rest of the window can make up
for it; restore, most important first, only when the projection stays under the target by a
margin with the load's power back. Process limits outrank the demand limit: a load whose band
variable nears its limit is never shed and a shed one is restored, as is one off for its
maximum time. The limiter is pure: the caller gives it the state and acts on its answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo

from .config import ControlConfig
from .loads import DRAWS_NOTHING_SHARE, Action, LoadState
from .window import Projection

__all__ = ["DemandLimiter", "LimiterInputs"]


@dataclass(frozen=True, slots=True)
class LimiterInputs:
    now: datetime
    projection: Projection | None
    """None when the incomer's reading is stale or bad: the demand is unknown."""
    limit_kw: float
    """The limit in force: the site's, or a lower one a demand-response event set."""
    price_vnd_per_kwh: float
    binding: str = "demand limit"
    """What the limit is, for the reasons: `demand limit` or `demand response <id>`."""
    slack_s: Mapping[str, float] = field(default_factory=dict)
    """Seconds a load's session may still stay off and be done by its departure (a
    charger's): a load is shed only with a shed's length of slack, and is restored when
    its slack falls under RESTORE_SLACK_S."""
    next_price: tuple[datetime, float] | None = None
    """When the price next changes, and to what (None: not within a week). A store may ride
    through to a fall (`ControlConfig.shift_stores`); a shed made up after a rise costs
    more, and is made after those that do not."""
    finish_s: Mapping[str, float] = field(default_factory=dict)
    """Seconds of charging a load's session has left at its rate: a shed of it is made up
    at the session's end."""
    cheapest_vnd_per_kwh: float | None = None
    """The tariff's lowest price (None: one price all day): an idle load is not stopped at
    it, where a shed of the day's budget saves the least."""
    peak_today_kw: float = float("inf")
    """The highest window of the site's day so far: a shed made up dearer is made for the
    site's limit only against a window above it, a peak the day has not had (inf: unknown,
    never)."""


WORTHLESS_HOLD_S = 90.0
"""A shed its process ends sooner than this buys almost nothing in a 15-min window and
spends a shed of the day's budget: such a load is left running."""

RESTORE_STAGGER_S = 60.0
"""Loads restored for headroom come back one at a time, this far apart, so that their
backlogs (a chiller's warm tank, a receiver to refill) do not make the next window's peak."""


COAST_MIN_S = 300.0
"""A store that holds less than this moves too little of its work past a price fall to be
worth a shed of the day's budget."""

DRIFT_TRUST = 0.8
"""The share of a store's hold from its drift that a coast counts on: the process's draw
follows the shift, and a store the band brings back before the fall makes up in the dear
hours."""

UNSEEN_S = 20.0
"""How long a switched-off load's power may still be in the incomer's reading (the write, the
machine's stop and the meter's next poll), at least; three control cycles where they are
slower."""

RESTORE_SLACK_S = 900.0
"""A session with less slack than this (a plan slot) runs now, whatever the demand."""

_INF = float("inf")


class DemandLimiter:
    def __init__(self, config: ControlConfig, *, zone: tzinfo = UTC) -> None:
        """`zone`: the site's time zone: the shed budget is the site's day's."""
        self.config = config
        self.zone = zone
        self.short_kw = 0.0
        """How far the last cycle's sheddable loads fell short of what was needed (kW of
        power to shed now); > 0 means nothing left can hold the window."""
        self._last_restore: datetime | None = None
        self._coasting: dict[str, datetime] = {}
        """Band loads shed to ride their store through to a price fall, and when it falls:
        none is restored for headroom before then (its band and maximum off time still
        restore it whenever they must)."""

    def step(self, inputs: LimiterInputs, loads: Iterable[LoadState]) -> list[Action]:
        states = [s for s in loads if s.available]
        actions = self._forced_restores(inputs, states)
        restored = {a.load for a in actions}
        self._coasting = {
            name: at
            for name, at in self._coasting.items()
            if name not in restored and at > inputs.now
        }
        # A load the park's override holds is not the limiter's to shed or restore; only
        # the process (its band, its maximum off time) takes it back.
        states = [s for s in states if s.name not in restored and s.held_by != "override"]
        projection = inputs.projection
        if projection is None:
            return actions + self._unknown(inputs, states)
        target = inputs.limit_kw * self.config.target_share
        allowed = projection.allowed_kw(target, self.config.window.length_s)
        power = projection.power_kw
        unseen = self._unseen_kw(inputs.now, states)
        if power - unseen > allowed:
            return actions + self._shed(inputs, states, power - unseen - allowed, target)
        self.short_kw = 0.0
        actions += self._restore(inputs, states, allowed - power)
        if self.config.shift_stores:
            actions += self._coast(inputs, states, target - power)
        acted = {a.load for a in actions}
        return actions + self._stop_idle(inputs, [s for s in states if s.name not in acted])

    def _unseen_kw(self, now: datetime, states: list[LoadState]) -> float:
        """The power of loads switched off moments ago that the incomer may not show yet: a
        second load shed for the need the first has met is a rebound for nothing (and two
        stores shed together come back together). A load's own reading says whether it has
        stopped; one without a power point counts its rating until the meter has had the
        time to show it. A load that does not stop counts only for that time, after which
        the limiter sheds for it again."""
        unseen_s = max(UNSEEN_S, 3 * self.config.cycle_s)
        total = 0.0
        for state in states:
            if state.on or state.since is None or (now - state.since).total_seconds() > unseen_s:
                continue
            if state.power_kw is None:
                total += state.config.rated_kw
            elif state.power_kw > DRAWS_NOTHING_SHARE * state.config.rated_kw:
                total += state.power_kw
        return total

    def _forced_restores(self, inputs: LimiterInputs, states: list[LoadState]) -> list[Action]:
        """Process first: the band, then the maximum off time, whatever the demand."""
        actions: list[Action] = []
        for state in states:
            if state.on or state.held_by not in ("limiter", "override"):
                continue
            off_s = state.held_for(inputs.now)
            if (
                state.held_by == "limiter"
                and inputs.slack_s.get(state.name, _INF) < RESTORE_SLACK_S
            ):
                why, binding = "its session must run now to be done by its departure", "deadline"
            elif self.band_near(state, 1.0):
                why, binding = "its process variable is near its limit", "process band"
            elif off_s >= state.config.max_off_s:
                why, binding = (
                    f"off for its maximum of {state.config.max_off_s:.0f} s",
                    ("max off time"),
                )
            elif state.held_by == "limiter" and self._owed_past_rise(inputs, state):
                why, binding = "its store must be made up before the price rises", "tariff"
            else:
                continue
            actions.append(self._action(inputs, state, "restore", binding, why))
        return actions

    def _owed_past_rise(self, inputs: LimiterInputs, state: LoadState) -> bool:
        """Whether a store held off for the limit must run now to be made up before the
        price's next rise: held on, its making-up would be bought at the higher price
        (not one that coasts to a fall)."""
        until_s = _until(inputs, rise=True)
        if state.name in self._coasting or until_s is None:
            return False
        made_up_s = state.made_up_s(0.0)
        return made_up_s is not None and until_s <= made_up_s

    def _unknown(self, inputs: LimiterInputs, states: list[LoadState]) -> list[Action]:
        policy = self.config.on_meter_unknown
        why = "the incomer's reading is stale or bad"
        if policy == "restore":
            return [
                self._action(inputs, s, "restore", "meter unknown", why)
                for s in states
                if not s.on and s.held_by == "limiter" and self._may_start(s, inputs.now)
            ]
        if policy == "shed":
            return [
                self._action(inputs, s, "shed", "meter unknown", why)
                for s in self._sheddable(self._can_wait(inputs, states), inputs.now)
            ]
        return []

    def _shed(
        self, inputs: LimiterInputs, states: list[LoadState], need_kw: float, target: float
    ) -> list[Action]:
        """The lowest priority first, until the need is met. A shed whose making-up falls
        after a rise of the price (a charger's session pushed past it, a store restored
        into it) buys the window with a dearer bill. For the site's own limit it is made
        only against a window above the day's highest so far (a peak the day has not had);
        otherwise the window goes over as it would without control, and the shortfall says
        so. Where it is made (that peak, or a demand-response event the site accepted) it
        comes after those that cost nothing more, in the declared order among themselves.
        A store whose hold reaches a fall of the price goes first: it is made up after it."""
        actions: list[Action] = []
        projection = inputs.projection
        assert projection is not None
        left_kw = need_kw
        candidates = self._sheddable(self._can_wait(inputs, states), inputs.now)
        dear = {s.name for s in candidates if self._made_up_dearer(inputs, s)}
        new_peak = projection.projected_kw > max(inputs.peak_today_kw, inputs.limit_kw)
        if not (new_peak or inputs.binding.startswith("demand response")):
            candidates = [s for s in candidates if s.name not in dear]
        fall, until_s = inputs.next_price, _until(inputs, rise=False)
        cheaper = {
            s.name
            for s in candidates
            if until_s is not None and self._is_store(s) and until_s <= self._store_hold_s(s)
        }
        # Stable: in the declared order within each of made up cheaper, the same, dearer.
        cheap_first = sorted(candidates, key=lambda s: (s.name not in cheaper, s.name in dear))
        for state in cheap_first:
            if left_kw <= 0:
                break
            if self._rebounds_over(projection, state):
                continue
            kw = state.expected_kw()
            kwh = kw * projection.remaining_s / 3600.0
            why = (
                f"projected {projection.projected_kw:.0f} kW for the window against a target "
                f"of {target:.0f} kW ({inputs.binding} {inputs.limit_kw:.0f} kW); "
                f"{need_kw:.0f} kW to shed, this load's {kw:.0f} kW is the lowest priority "
                f"({state.config.priority}) left"
            )
            if state.name in dear:
                why += ", although its making-up falls after the price rises"
            if state.name in cheaper:
                assert fall is not None
                why += (
                    f"; its store holds until the price falls at "
                    f"{fall[0].astimezone(self.zone):%H:%M}, so it is made up after the fall"
                )
                self._coasting[state.name] = fall[0]
            actions.append(self._action(inputs, state, "shed", inputs.binding, why, kwh=kwh))
            left_kw -= kw
        self.short_kw = max(0.0, left_kw)
        return actions

    def _rebounds_over(self, projection: Projection, state: LoadState) -> bool:
        """Whether a store shed now would come back within the next window and make it the
        higher one: off for the rest of this window and into the next, it makes up all it
        missed there, so this window loses what the next one gains (kW × the rest of this
        window). That helps only while the next window, as the power now would make it,
        stays under this one with the exchange; a hold not yet read from the store's drift
        is not judged so."""
        hold_s = state.band_hold_s()
        length = self.config.window.length_s
        if hold_s is None or not projection.remaining_s < hold_s < projection.remaining_s + length:
            return False
        moved_kw = state.expected_kw() * projection.remaining_s / length
        return projection.power_kw + moved_kw > projection.projected_kw - moved_kw

    @staticmethod
    def _made_up_dearer(inputs: LimiterInputs, state: LoadState) -> bool:
        """Whether a shed of the load now is made up after the price's next rise: a
        session's at its end (pushed by the shed); a store's when, running at its rating
        after the longest the shed may last, it is back where the limiter's sheds found it
        (a chiller with little to spare over its heat load takes hours), else, before its
        refill has been seen, twice the hold."""
        until_s = _until(inputs, rise=True)
        if until_s is None:
            return False
        hold_s = state.expected_hold_s()
        if state.name in inputs.finish_s:
            back_s = inputs.finish_s[state.name] + min(hold_s, RESTORE_SLACK_S)
        else:
            band_hold_s = state.band_hold_s()
            if band_hold_s is not None:
                hold_s = min(hold_s, band_hold_s)
            made_up_s = state.made_up_s(hold_s)
            back_s = 2 * hold_s if made_up_s is None else made_up_s
        return until_s <= back_s

    def _restore(
        self, inputs: LimiterInputs, states: list[LoadState], headroom_kw: float
    ) -> list[Action]:
        actions: list[Action] = []
        projection = inputs.projection
        assert projection is not None
        waiting = sorted(
            (
                s
                for s in states
                if not s.on and s.held_by == "limiter" and s.name not in self._coasting
            ),
            key=lambda s: (-s.config.priority, s.name),
        )
        last = self._last_restore
        if last is not None and (inputs.now - last).total_seconds() < RESTORE_STAGGER_S:
            return actions
        for state in waiting:
            kw = state.config.rated_kw
            if kw + self.config.restore_margin_kw > headroom_kw:
                break  # the most important waits first; no overtaking by smaller loads
            if not self._may_start(state, inputs.now):
                continue
            why = (
                f"projected {projection.projected_kw:.0f} kW leaves {headroom_kw:.0f} kW of "
                f"headroom under {inputs.binding} {inputs.limit_kw:.0f} kW for its {kw:.0f} kW"
            )
            actions.append(self._action(inputs, state, "restore", inputs.binding, why))
            self._last_restore = inputs.now
            break  # one at a time: the next after RESTORE_STAGGER_S
        return actions

    def _coast(
        self, inputs: LimiterInputs, states: list[LoadState], room_kw: float
    ) -> list[Action]:
        """Band loads whose store holds until the price falls are shed now and restored
        after the fall: their process draws the same work, and its making-up is done at
        the lower price. A coast starts only as the fall comes within what the store has
        shown it holds (so the band does not end it in the dear hours), keeps one shed of
        the day for the limit, and only while the window has room for the coasting loads
        to come back at their rated power together (their making-up must not make a
        peak after the fall)."""
        fall, until_s = inputs.next_price, _until(inputs, rise=False)
        if fall is None or until_s is None:
            return []
        at, price = fall
        today = inputs.now.astimezone(self.zone).date()
        by_name = {s.name: s for s in states}
        room_kw -= sum(by_name[name].config.rated_kw for name in self._coasting if name in by_name)
        actions = []
        for state in self._sheddable(states, inputs.now):
            # What its store holds from where it is now, at the drift its process has
            # shown (else what its sheds have shown), never its maximum off time alone: a
            # store that the band brings back before the fall makes up at once, in the dear
            # hours.
            hold_s = self._store_hold_s(state)
            if (
                not self._is_store(state)
                or hold_s < COAST_MIN_S
                or not 0 < until_s <= hold_s
                or state.sheds_left(today) < 2
                or state.config.rated_kw > room_kw
            ):
                continue
            band = state.config.band
            assert band is not None  # a store's
            room_kw -= state.config.rated_kw
            kw = state.expected_kw()
            kwh = kw * until_s / 3600.0
            local = at.astimezone(self.zone)
            why = (
                f"the price falls from {inputs.price_vnd_per_kwh:,.0f} to {price:,.0f} "
                f"VND/kWh at {local:%H:%M}, within what its {band.point} has "
                f"shown it holds ({hold_s / 60:.0f} min): its making-up runs after the fall"
            )
            actions.append(
                self._action(
                    inputs,
                    state,
                    "shed",
                    "tariff",
                    why,
                    kwh=kwh,
                    vnd=kwh * (inputs.price_vnd_per_kwh - price),
                )
            )
            self._coasting[state.name] = at
        return actions

    def _stop_idle(self, inputs: LimiterInputs, states: list[LoadState]) -> list[Action]:
        """Loads that run idle (`LoadConfig.idle_share`) are stopped, one shed of the day
        each: their own control starts them when their process needs them, and the idle
        running until then is saved. Never at the tariff's cheapest price, where a shed
        saves least, and never the day's last shed, which stays for the limit."""
        cheapest = inputs.cheapest_vnd_per_kwh
        if cheapest is not None and inputs.price_vnd_per_kwh <= cheapest:
            return []
        today = inputs.now.astimezone(self.zone).date()
        actions = []
        for state in self._sheddable(states, inputs.now):
            share, kw = state.config.idle_share, state.power_kw
            if share is None or kw is None or kw > share * state.config.rated_kw:
                continue
            if state.sheds_left(today) < 2:
                continue
            kwh = kw * state.expected_hold_s() / 3600.0
            why = (
                f"it runs idle at {kw:.1f} kW ({share:.0%} of its {state.config.rated_kw:.0f} "
                "kW or less), doing no work; its own control starts it again when its "
                "process needs it"
            )
            actions.append(self._action(inputs, state, "shed", "idle running", why, kwh=kwh))
        return actions

    @staticmethod
    def _is_store(state: LoadState) -> bool:
        """A band load whose work its store carries (a chiller, a pump), not a deferrable."""
        return state.config.band is not None and state.config.deferrable is None

    @staticmethod
    def _store_hold_s(state: LoadState) -> float:
        """How long a store shed now holds: from its band variable's distance to the edge
        and drift, else from the sheds its band has ended, else 0; never past its maximum
        off time."""
        hold_s = state.band_hold_s()
        if hold_s is None:
            return 0.0 if state.hold_s is None else state.expected_hold_s()
        return min(hold_s * DRIFT_TRUST, state.config.max_off_s)

    @staticmethod
    def _can_wait(inputs: LimiterInputs, states: list[LoadState]) -> list[LoadState]:
        """A session is shed only if it can stay off for a whole shed and still be done."""
        return [
            s
            for s in states
            if inputs.slack_s.get(s.name, _INF) >= s.expected_hold_s() + RESTORE_SLACK_S
        ]

    def _sheddable(self, states: list[LoadState], now: datetime) -> list[LoadState]:
        """Who may be shed now, in the order to shed them: the lowest priority first (the
        plant's declared order); among equals the one shed least today (rotation), then the
        one whose shed lasts longest. A load whose sheds its process ends within
        WORTHLESS_HOLD_S is left out, and each load's budget is paced over the site's day,
        so that the evening's windows still find sheds left."""
        local = now.astimezone(self.zone)
        today = local.date()
        elapsed = (local.hour * 3600 + local.minute * 60 + local.second) / 86_400
        candidates = [
            s
            for s in states
            if s.config.sheddable
            and not s.config.critical
            and s.on
            and s.held_by is None
            and s.held_for(now) >= s.config.min_on_s
            and s.sheds_left(today) > 0
            and self._paced(s, today, elapsed)
            and s.expected_hold_s() >= WORTHLESS_HOLD_S
            and not self.band_near(s, 2.0)
            and (s.power_kw is None or s.power_kw > DRAWS_NOTHING_SHARE * s.config.rated_kw)
        ]
        return sorted(
            candidates,
            key=lambda s: (
                s.config.priority,
                s.config.max_sheds_per_day - s.sheds_left(today),
                -s.expected_kw() * s.expected_hold_s(),
                s.name,
            ),
        )

    @staticmethod
    def _paced(state: LoadState, today: date, elapsed: float) -> bool:
        """The day's sheds spread over it: by a share x of the day, at most 1 + x·budget."""
        budget = state.config.max_sheds_per_day
        used = budget - state.sheds_left(today)
        return used < 1 + elapsed * budget

    @staticmethod
    def _may_start(state: LoadState, now: datetime) -> bool:
        return state.held_for(now) >= state.config.min_off_s

    @staticmethod
    def band_near(state: LoadState, margins: float) -> bool:
        band = state.config.band
        if band is None:
            return False
        value = state.band_value
        if value is None:
            return True  # a process variable that cannot be read is treated as at its limit
        if band.minimum is not None:
            return value <= band.minimum + margins * band.margin
        assert band.maximum is not None
        return value >= band.maximum - margins * band.margin

    def _action(
        self,
        inputs: LimiterInputs,
        state: LoadState,
        kind: str,
        binding: str,
        why: str,
        *,
        kwh: float = 0.0,
        vnd: float | None = None,
    ) -> Action:
        projection = inputs.projection
        if vnd is None:
            vnd = kwh * inputs.price_vnd_per_kwh if kind == "shed" else 0.0
        return Action(
            at=inputs.now,
            load=state.name,
            kind="shed" if kind == "shed" else "restore",
            on=kind != "shed",
            reason=f"{kind} {state.name}: {why}",
            binding=binding,
            projected_kw=None if projection is None else round(projection.projected_kw, 1),
            limit_kw=inputs.limit_kw,
            price_vnd_per_kwh=inputs.price_vnd_per_kwh,
            priority=state.config.priority,
            expected_kwh=round(kwh, 3),
            expected_vnd=round(vnd),
        )


def _until(inputs: LimiterInputs, *, rise: bool) -> float | None:
    """Seconds until the price's next change if it is a rise (`rise`) or a fall, else None."""
    change = inputs.next_price
    if change is None:
        return None
    higher = change[1] > inputs.price_vnd_per_kwh
    lower = change[1] < inputs.price_vnd_per_kwh
    if (rise and not higher) or (not rise and not lower):
        return None
    return (change[0] - inputs.now).total_seconds()
