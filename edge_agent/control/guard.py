"""The only path from a decision to a write, and the last check before it.

Whatever the limiter or the planner decide, a write happens only if the point is declared
writable, the value is within its declared range, the load has been on (off) for its minimum
time, the point was not written moments ago, no manual override holds the load, and the agent
is not advisory. Heartbeats keep the devices' watchdogs fed; when the agent stops, every load
is written back to its safe state, and a load whose device was lost is taken as back in it
(the device's watchdog put it there).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo

from drivers.base import DeviceUnavailable, WriteFailed, WriteRefused
from edge_agent.config.schema import Device
from edge_agent.model import PointId, Value

from .config import ControlConfig, LoadConfig
from .loads import Action, LoadState

__all__ = ["Guard", "Writer"]

log = logging.getLogger(__name__)

Writer = Callable[[PointId, Value], Awaitable[None]]

_BYPASS_MIN_TIMES = {"process band", "safe state", "device lost"}
"""Bindings that outrank a minimum on/off time: the process, and the return to safety. An
override does not: the park cannot switch a compressor faster than its motor allows."""
_OUTRANK_OVERRIDES = {"process band", "max off time", "device lost"}
"""Bindings that outrank the park's override: the process's own limits."""


class Guard:
    def __init__(
        self,
        config: ControlConfig,
        devices: Iterable[Device],
        write: Writer,
        *,
        advisory: bool,
        zone: tzinfo = UTC,
    ) -> None:
        """`zone`: the site's time zone, whose midnight starts a new day of sheds."""
        self.config = config
        self.zone = zone
        self._devices = {d.name: d for d in devices}
        self._write = write
        self.advisory = advisory
        self.states = {load.name: LoadState(load) for load in config.loads}
        self.overrides: dict[str, tuple[bool, datetime]] = {}
        """Device name -> (on, until): the park's manual overrides."""
        self._last_write: dict[PointId, datetime] = {}
        self._beat = 0

    async def execute(self, action: Action) -> Action:
        """Check, write (unless advisory), and record; the action as done or refused."""
        state = self.states[action.load]
        on = action.on
        refused = self._refusal(state, action, on)
        if refused is not None:
            log.info("refused %s %s: %s", action.kind, action.load, refused)
            return replace(action, refused=refused)
        written = False
        if not self.advisory:
            try:
                await self._switch(state.config, on, action.at)
                written = True
            except (WriteRefused, WriteFailed, DeviceUnavailable) as exc:
                log.warning("%s %s: the write failed: %s", action.kind, action.load, exc)
                return replace(action, refused=f"write failed: {exc}")
        self._record(state, action, on)
        log.info("%s%s", "" if written else "advisory (not written): ", action.reason)
        return replace(action, written=written)

    def _refusal(self, state: LoadState, action: Action, on: bool) -> str | None:
        config, now = state.config, action.at
        if not state.available and action.binding != "safe state":
            return "its device cannot be reached"
        if state.on == on and action.kind not in ("override", "safe-state"):
            return f"already {'on' if on else 'off'}"
        if config.critical and not on:
            return "the load is critical: it is never switched off"
        override = self.overrides.get(config.device)
        if (
            override is not None
            and action.kind not in ("override", "safe-state")
            and action.binding not in _OUTRANK_OVERRIDES
        ):
            if override[1] > now:
                return f"a manual override holds it {'on' if override[0] else 'off'}"
            del self.overrides[config.device]
        if action.binding not in _BYPASS_MIN_TIMES:
            held = state.held_for(now)
            needed = config.min_off_s if on else config.min_on_s
            if held < needed:
                return f"its minimum {'off' if on else 'on'} time: {held:.0f} s of {needed:.0f} s"
        point = f"{config.device}/{config.command}"
        last = self._last_write.get(point)
        if (
            last is not None
            and action.binding not in _BYPASS_MIN_TIMES
            and (now - last).total_seconds() < self.config.write_interval_s
        ):
            return f"written {(now - last).total_seconds():.0f} s ago (rate limit)"
        return self._range_problem(config, config.on_value if on else config.off_value)

    def _range_problem(self, config: LoadConfig, value: Value) -> str | None:
        device = self._devices.get(config.device)
        point = device.points.get(config.command) if device is not None else None
        if point is None or not point.writable:
            return f"{config.device}/{config.command} is not declared writable"
        if isinstance(value, bool):
            return None
        low, high = getattr(point, "min", None), getattr(point, "max", None)
        if (low is not None and value < low) or (high is not None and value > high):
            return f"{value} is outside the declared range [{low}, {high}]"
        return None

    async def _switch(self, config: LoadConfig, on: bool, now: datetime) -> None:
        point = f"{config.device}/{config.command}"
        await self._write(point, config.on_value if on else config.off_value)
        self._last_write[point] = now

    def _record(self, state: LoadState, action: Action, on: bool) -> None:
        now = action.at
        if (
            on
            and not state.on
            and state.held_by == "limiter"
            and state.since is not None
            and action.binding in ("process band", "max off time")
        ):
            state.learn_hold((now - state.since).total_seconds())
        if state.on != on:
            state.since = now
        state.on = on
        if action.kind == "shed":
            state.held_by = "limiter"
            state.count_shed(now.astimezone(self.zone).date())
            state.owe()
        elif action.kind == "defer":
            state.held_by = "plan"
        elif action.kind == "override":
            state.held_by = "override"
        else:
            state.held_by = None

    async def heartbeat(self) -> None:
        """One beat to every load's watchdog (not in advisory mode: the agent writes
        nothing then, and the devices stay under their own control)."""
        if self.advisory:
            return
        self._beat = self._beat % 2_000_000_000 + 1
        for state in self.states.values():
            point = state.config.heartbeat
            if point is None or not state.available:
                continue
            try:
                await self._write(f"{state.config.device}/{point}", self._beat)
            except DeviceUnavailable as exc:  # not connected yet, or lost: the poller says so
                log.debug("heartbeat to %s not sent: %s", state.config.device, exc)
            except (WriteRefused, WriteFailed) as exc:
                log.warning("heartbeat to %s failed: %s", state.config.device, exc)

    def device_lost(self, device: str, now: datetime) -> list[Action]:
        """The device stopped answering: its watchdog returns its loads to their safe
        state, and the agent takes them as there (no write is possible)."""
        actions = []
        for state in self.states.values():
            if state.config.device != device or not state.available:
                continue
            state.available = False
            safe_on = state.config.safe_state == "on"
            if state.on != safe_on or state.held_by is not None:
                actions.append(self._safe_action(state, now, "device lost", written=False))
                state.on, state.since, state.held_by = safe_on, now, None
        return actions

    def device_back(self, device: str) -> None:
        for state in self.states.values():
            if state.config.device == device:
                state.available = True

    async def safe_state(self, now: datetime) -> list[Action]:
        """Every load back to its safe state: when the agent stops, or goes advisory."""
        actions = []
        for state in self.states.values():
            safe_on = state.config.safe_state == "on"
            if state.on == safe_on and state.held_by is None:
                continue
            action = self._safe_action(state, now, "safe state", written=False)
            actions.append(await self.execute(action))
        return actions

    def _safe_action(
        self, state: LoadState, now: datetime, binding: str, *, written: bool
    ) -> Action:
        safe = state.config.safe_state
        why = (
            "the agent is stopping or went advisory"
            if binding == "safe state"
            else "its device was lost; its watchdog returns it there"
        )
        return Action(
            at=now,
            load=state.name,
            kind="safe-state",
            on=safe == "on",
            reason=f"{safe} {state.name}: back to its safe state: {why}",
            binding=binding,
            projected_kw=None,
            limit_kw=None,
            price_vnd_per_kwh=None,
            priority=state.config.priority,
            expected_kwh=0.0,
            expected_vnd=0.0,
            written=written,
        )
