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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .config import ControlConfig
from .loads import Action, LoadState
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


class DemandLimiter:
    def __init__(self, config: ControlConfig) -> None:
        self.config = config
        self.short_kw = 0.0
        """How far the last cycle's sheddable loads fell short of what was needed."""

    def step(self, inputs: LimiterInputs, loads: Iterable[LoadState]) -> list[Action]:
        states = [s for s in loads if s.available]
        actions = self._forced_restores(inputs, states)
        restored = {a.load for a in actions}
        states = [s for s in states if s.name not in restored]
        projection = inputs.projection
        if projection is None:
            return actions + self._unknown(inputs, states)
        target = inputs.limit_kw * self.config.target_share
        allowed = projection.allowed_kw(target, self.config.window.length_s)
        power = projection.power_kw
        if power > allowed:
            return actions + self._shed(inputs, states, power - allowed, target)
        self.short_kw = 0.0
        return actions + self._restore(inputs, states, allowed - power)

    def _forced_restores(self, inputs: LimiterInputs, states: list[LoadState]) -> list[Action]:
        """Process first: the band, then the maximum off time, whatever the demand."""
        actions = []
        for state in states:
            if state.on or state.held_by != "limiter":
                continue
            off_s = state.held_for(inputs.now)
            if self._band_near(state, 1.0):
                why, binding = "its process variable is near its limit", "process band"
            elif off_s >= state.config.max_off_s:
                why, binding = (
                    f"off for its maximum of {state.config.max_off_s:.0f} s",
                    ("max off time"),
                )
            else:
                continue
            actions.append(self._action(inputs, state, "restore", binding, why))
        return actions

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
                for s in self._sheddable(states, inputs.now)
            ]
        return []

    def _shed(
        self, inputs: LimiterInputs, states: list[LoadState], need_kw: float, target: float
    ) -> list[Action]:
        actions = []
        projection = inputs.projection
        assert projection is not None
        left_kw = need_kw
        for state in self._sheddable(states, inputs.now):
            if left_kw <= 0:
                break
            kw = state.expected_kw()
            kwh = kw * projection.remaining_s / 3600.0
            why = (
                f"projected {projection.projected_kw:.0f} kW for the window against a target "
                f"of {target:.0f} kW ({inputs.binding} {inputs.limit_kw:.0f} kW); "
                f"{need_kw:.0f} kW to shed, this load's {kw:.0f} kW is the lowest priority "
                f"({state.config.priority}) left"
            )
            actions.append(self._action(inputs, state, "shed", inputs.binding, why, kwh=kwh))
            left_kw -= kw
        self.short_kw = max(0.0, left_kw)
        return actions

    def _restore(
        self, inputs: LimiterInputs, states: list[LoadState], headroom_kw: float
    ) -> list[Action]:
        actions = []
        projection = inputs.projection
        assert projection is not None
        waiting = sorted(
            (s for s in states if not s.on and s.held_by == "limiter"),
            key=lambda s: (-s.config.priority, s.name),
        )
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
            headroom_kw -= kw
        return actions

    def _sheddable(self, states: list[LoadState], now: datetime) -> list[LoadState]:
        today = now.date()
        candidates = [
            s
            for s in states
            if s.config.sheddable
            and not s.config.critical
            and s.on
            and s.held_by is None
            and s.held_for(now) >= s.config.min_on_s
            and s.sheds_left(today) > 0
            and not self._band_near(s, 2.0)
            and (s.power_kw is None or s.power_kw > 0.05 * s.config.rated_kw)
        ]
        return sorted(candidates, key=lambda s: (s.config.priority, -s.expected_kw(), s.name))

    @staticmethod
    def _may_start(state: LoadState, now: datetime) -> bool:
        return state.held_for(now) >= state.config.min_off_s

    @staticmethod
    def _band_near(state: LoadState, margins: float) -> bool:
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
    ) -> Action:
        projection = inputs.projection
        saving = kwh * inputs.price_vnd_per_kwh if kind == "shed" else 0.0
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
            expected_vnd=round(saving),
        )
