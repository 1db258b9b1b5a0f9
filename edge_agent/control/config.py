"""The `control:` section of a site file: the demand limit, and the loads the agent may switch.

Safety comes first in these defaults: the agent starts in advisory mode (it decides and
explains, but writes nothing) until the site says `mode: active`; a load is not sheddable
unless it says so; and a meter that cannot be read makes the limiter hold, not guess.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from edge_agent.config.base import Name, StrictModel

__all__ = [
    "BandConfig",
    "BatchQueueConfig",
    "ControlConfig",
    "DeferrableConfig",
    "GenerationConfig",
    "LoadConfig",
    "WindowConfig",
]


class WindowConfig(StrictModel):
    """The utility's (or the park's) demand window: average power over it is what is billed."""

    length_s: int = Field(default=900, ge=60, le=3600)
    """15 min (900) or 30 min (1800) in Vietnam and most parks."""
    kind: Literal["fixed", "sliding"] = "fixed"
    """`fixed`: windows aligned to the clock (:00, :15, ...), as EVN meters bill; `sliding`:
    the last `length_s` at every moment, as some park substations cap."""


class BandConfig(StrictModel):
    """A process variable the load keeps in band (receiver pressure, tank level, cold-store
    temperature). The limiter never sheds a load whose variable is near its limit, and
    restores a shed load, whatever the demand, before the variable crosses it."""

    point: Name
    """The point on the load's device that carries the variable, e.g. `pressure_bar`."""
    minimum: float | None = None
    """The process minimum, for variables the load raises (pressure, level)."""
    maximum: float | None = None
    """The process maximum, for variables the load lowers (temperature)."""
    margin: NonNegativeFloat = 0.0
    """Restore when the variable is within this distance of its limit; shed only beyond
    twice it."""

    @model_validator(mode="after")
    def _one_side(self) -> BandConfig:
        if (self.minimum is None) == (self.maximum is None):
            raise ValueError("set exactly one of `minimum` (pressure, level) or `maximum`")
        return self


class BatchQueueConfig(StrictModel):
    """A sequencer's queue table: entry k (1 = the earliest deadline) shows its duration,
    deadline and power in points named by these patterns, `{k}` standing for the entry.
    With it the planner places every waiting batch, not only the next: a sequencer left to
    itself runs its whole queue back to back, so a plan that sees one batch loses the
    furnace for the rest of the day."""

    length: int = Field(ge=1, le=32)
    """How many entries the device shows."""
    duration: str = "queue_{k}_duration_s"
    deadline: str = "queue_{k}_deadline_in_s"
    power: str | None = "queue_{k}_kw"
    """The entry's power (kW); without it the load's `rated_kw` is assumed."""

    def points(self, k: int) -> tuple[str, str, str | None]:
        """Entry k's duration, deadline and power point names."""
        return (
            self.duration.replace("{k}", str(k)),
            self.deadline.replace("{k}", str(k)),
            None if self.power is None else self.power.replace("{k}", str(k)),
        )

    @model_validator(mode="after")
    def _patterns(self) -> BatchQueueConfig:
        for pattern in (self.duration, self.deadline, self.power):
            if pattern is not None and "{k}" not in pattern:
                raise ValueError(f"the point pattern {pattern!r} must contain {{k}}")
        return self


class DeferrableConfig(StrictModel):
    """What the planner needs to move a load in time, read from the device's own points.

    `batch`: a non-interruptible batch sequencer (furnace, oven): the planner chooses when
    the next batch may start. `energy`: a session that needs energy by a departure (EV or
    forklift charger): the planner chooses the slots it charges in.
    """

    kind: Literal["batch", "energy"]
    waiting: Name = "batches_waiting"
    """batch: how many batches wait to start."""
    duration: Name = "next_batch_duration_s"
    """batch: the next batch's run time (s)."""
    deadline: Name = "next_deadline_in_s"
    """batch: seconds until the next batch must be finished; energy: until departure."""
    active: Name = "batch_active"
    """batch: a batch is running (it cannot be interrupted)."""
    remaining: Name = "batch_remaining_s"
    """batch: seconds left of the running batch."""
    batch_power: Name | None = None
    """batch: a point with the running batch's power (kW), e.g. `batch_kw`; without it the
    load's `rated_kw` is assumed."""
    queue: BatchQueueConfig | None = None
    """batch: the sequencer's queue table, when the device shows one (see BatchQueueConfig);
    without it only the next batch is planned."""
    energy_needed: Name = "energy_needed_kwh"
    """energy: what the session still needs."""
    connected: Name = "connected"
    """energy: a vehicle is plugged in."""


class LoadConfig(StrictModel):
    name: Name
    device: Name
    """The device (from `devices:`) whose points switch and measure this load."""
    command: Name = "enable"
    """The writable point that lets the load run (True / `on_value`) or holds it off."""
    on_value: float | bool = True
    off_value: float | bool = False
    safe_state: Literal["on", "off"] = "on"
    """What the load returns to when the agent stops, loses the device or crashes (the
    device's own heartbeat watchdog does the last): usually `on`, local automatic control."""
    power: Name | None = "power_kw"
    """A point with the load's own power (kW); without it, `rated_kw` is assumed when on."""
    rated_kw: PositiveFloat
    priority: int = Field(default=50, ge=0, le=1000)
    """Higher is more important: the limiter sheds the lowest first, restores the highest
    first."""
    critical: bool = False
    """Never shed, never deferred, whatever else is set."""
    sheddable: bool = False
    min_on_s: NonNegativeFloat = 300
    """After starting, the load runs at least this long (compressor motors, chillers)."""
    min_off_s: NonNegativeFloat = 300
    """After stopping, the load stays off at least this long."""
    max_off_s: PositiveFloat = 1800
    """A shed load is restored after this long whatever the demand."""
    max_sheds_per_day: int = Field(default=6, ge=0)
    idle_share: float | None = Field(default=None, gt=0.0, lt=1.0)
    """The share of `rated_kw` at or under which the running load idles, doing no work (an
    air compressor's motor unloaded draws about a quarter of rated). While it idles, outside
    the tariff's cheapest hours, the limiter may stop it with one of its sheds of the day
    (keeping one for the limit); enabled again, the load's own control starts it when its
    process needs it (a compressor in automatic restarts at cut-in). Only for loads whose
    own control restarts them so; unset, an idle load is left running."""
    heartbeat: Name | None = None
    """A writable counter the device's watchdog watches; when it stops changing for the
    device's timeout, the device returns to its safe state by itself."""
    band: BandConfig | None = None
    deferrable: DeferrableConfig | None = None

    @model_validator(mode="after")
    def _coherent(self) -> LoadConfig:
        if self.critical and (self.sheddable or self.deferrable is not None):
            raise ValueError("a critical load can be neither sheddable nor deferrable")
        if self.min_off_s >= self.max_off_s:
            raise ValueError("min_off_s must be shorter than max_off_s")
        return self


class GenerationConfig(StrictModel):
    """A device that measures on-site generation (a PV inverter or its meter). The planner
    learns the site's base load net of it, and forecasts it from the sun."""

    device: Name
    power: Name = "power_kw"
    """The point with the generated power (kW, positive when generating)."""


class ControlConfig(StrictModel):
    mode: Literal["advisory", "active"] = "advisory"
    """`advisory` decides, logs and publishes every action but writes nothing: how a new site
    starts. `active` writes, through the guard. The park can switch it by command."""
    meter: Name
    """The incomer device: its `active_power_kw` and `import_energy_kwh` points give the
    site's demand."""
    limit_kw: PositiveFloat
    """The demand limit for the window's average power."""
    window: WindowConfig = WindowConfig()
    target_share: float = Field(default=0.97, gt=0.5, le=1.0)
    """Aim the projected window average at this share of the limit: a margin for the meter's
    noise and the seconds a shed takes to show."""
    restore_margin_kw: NonNegativeFloat = 10.0
    """Hysteresis: restore a load only if the projection stays this far under the target
    with its power added back."""
    cycle_s: PositiveFloat = 2.0
    """How often the limiter runs; its decisions have the last word over the plan."""
    on_meter_unknown: Literal["hold", "restore", "shed"] = "hold"
    """With the incomer's reading stale or bad: `hold` keeps what is shed and sheds nothing
    new (max-off and process bands still restore); `restore` returns every load to normal;
    `shed` sheds every sheddable load."""
    heartbeat_s: PositiveFloat = 10.0
    write_interval_s: NonNegativeFloat = 5.0
    """The guard's rate limit: at most one write per point in this time, except heartbeats
    and returns to the safe state."""
    shift_stores: bool = True
    """Band loads (a chiller on its tank, a pump on its tank) ride their store through to a
    fall of the tariff's price: shed as the fall comes within what their store holds,
    restored after it, so that their making-up is bought at the lower price. Their band
    and maximum off time restore them whenever they must; `false` sheds them for the
    limit alone."""
    plan_slot_s: int = Field(default=900, ge=60, le=3600)
    """The planner's slot: deferrable loads are planned per slot over `plan_horizon_h`."""
    plan_horizon_h: PositiveFloat = 24
    plan_time_limit_s: PositiveFloat = 0.8
    loads: list[LoadConfig] = Field(default_factory=list)
    generation: list[GenerationConfig] = Field(default_factory=list)
    """The devices that measure on-site generation (PV); without them the planner forecasts
    none."""

    @model_validator(mode="after")
    def _unique(self) -> ControlConfig:
        names = [load.name for load in self.loads]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two loads are named {name!r}")
        return self
