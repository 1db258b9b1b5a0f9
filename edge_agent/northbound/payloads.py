"""What the agent publishes: versioned payload models with a JSON Schema.

The park operator's side is written against these; a breaking change bumps `schema`'s
version. Field names carry their units.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ActionRecord",
    "ControlSummary",
    "DemandResponseOutcome",
    "DeviceSummary",
    "LatestValue",
    "LoadTime",
    "SiteSummary",
    "Status",
]


def schema_required(schema: dict[str, Any]) -> None:
    """`schema` names the payload's kind and version: a consumer must find it in every
    payload, so the published JSON Schema requires it (the model fills it in by default)."""
    if "schema" in schema.get("properties", {}):
        required = schema.setdefault("required", [])
        if "schema" not in required:
            required.insert(0, "schema")


class _Payload(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        json_schema_extra=schema_required,
    )


class LatestValue(_Payload):
    value: bool | int | float | None
    """As the device gave it: an int64 or uint64 counter stays a JSON integer (a float would
    lose its last digits above 2^53), a float a float, a boolean a boolean."""
    quality: Literal["good", "bad", "stale"]
    at: datetime


class DeviceSummary(_Payload):
    """One device over one interval [interval_start, interval_end)."""

    schema_: Literal["edge-agent/device-summary/1"] = Field(
        default="edge-agent/device-summary/1", alias="schema"
    )
    park: str
    site: str
    device: str
    model: str | None
    seq: int
    """Per agent, +1 for every summary; a subscriber drops a seq it has already seen."""
    interval_start: datetime
    interval_end: datetime
    energy_import_kwh: float | None
    """Import energy in the interval: the energy register's value at the end boundary minus
    its value at the start boundary (each the poll made on the boundary, else the last good
    reading before it, if it is not stale). None, never 0.0, when it is not known: `reason`
    says why."""
    energy_export_kwh: float | None
    energy_import_start_kwh: float | None
    """The register value used for the start boundary, for audit."""
    energy_import_end_kwh: float | None
    reason: str | None = None
    """Why `energy_import_kwh` is None; set exactly when it is: `agent not running` (no
    process summarised the interval: the agent was stopped, or killed before it closed it),
    `partial interval: the agent started at <time>` (or `the device was added at <time>`),
    `no good reading of the import register at the start boundary` (`the end boundary`,
    `either boundary`: the meter was down), `the import register went backwards (reset or
    replaced)`, `no import energy point`."""
    gap_start: datetime | None = None
    """Set when a gap without good readings ends at this interval: the last boundary with a
    good register reading before it."""
    gap_end: datetime | None = None
    """The first boundary with a good register reading after the gap: this interval's start
    or end."""
    gap_energy_import_kwh: float | None = None
    """The import register's advance from `gap_start` to `gap_end`: the energy of the gap,
    which no interval's energy or demand includes. The intervals' energies plus the gaps'
    add up to the register's advance. None (with `gap_start` set) if it went backwards."""
    power_avg_kw: float | None
    """Mean of the good active-power readings in the interval."""
    power_max_kw: float | None
    power_min_kw: float | None
    billing_window_start: datetime
    """Start of the demand window (15 or 30 min, fixed) the interval ends in."""
    billing_window_demand_kw: float | None
    """Average demand of that window from its start to the interval's end: at the window's
    last interval, the figure the utility bills and the park caps."""
    tariff_band: Literal["peak", "normal", "off_peak"]
    price_vnd_per_kwh: float
    cost_vnd: float | None
    """Import energy at the site's time-of-use price (the band at the interval's start)."""
    co2_kg: float | None
    """Import energy at the site's grid emission factor."""
    power_factor: float | None
    """The last good power-factor reading of the interval."""
    samples: int
    """Readings taken of all points in the interval."""
    good_ratio: float | None
    """Share of those readings that were good (0 to 1)."""
    latest: dict[str, LatestValue]
    """The last reading of every point in the interval."""
    outbox_dropped: int = 0
    """Summaries the agent's outbox dropped (full, or too old) since the previous summary:
    a hole in the books that is known, not silent."""
    historical: bool = False
    """Set when the summary is sent after the fact: it waited in the outbox through a broker
    outage or an agent restart."""


class ActionRecord(_Payload):
    """One control action, with its reason: what a plant engineer asks about afterwards."""

    at: datetime
    load: str
    kind: Literal["shed", "restore", "defer", "start", "override", "safe-state"]
    on: bool
    """The state the action puts the load in."""
    reason: str
    binding: str
    """The constraint that decided: `demand limit`, `demand response <id>`, `tariff`,
    `deadline`, `max off time`, `process band`, `safe state`, `device lost`, ..."""
    projected_kw: float | None
    """The billing window's projected average demand when it was decided."""
    limit_kw: float | None
    price_vnd_per_kwh: float | None
    priority: int
    expected_kwh: float
    """Energy taken out of the window (shed) or moved in time (defer, start)."""
    expected_vnd: float
    """The saving expected from it, at the tariff."""
    written: bool
    """False in advisory mode (decided, not written) or when refused."""
    refused: str | None
    """Why the guard did not let it through: a minimum on/off time, an override, ..."""


class LoadTime(_Payload):
    on_s: float
    shed_s: float
    """Held off by the demand limiter."""
    shifted_s: float
    """Held off by the plan, to run in cheaper or greener hours."""
    state: str
    """At the interval's end: `on`, `off (limiter)`, `off (plan)`, `unreachable`, ..."""


class DemandResponseOutcome(_Payload):
    id: str
    baseline_kw: float | None
    """The window's projected demand when the event started."""
    max_projected_kw: float | None
    delivered_kw: float | None
    """Baseline minus the highest projected demand during the event so far."""


class ControlSummary(_Payload):
    mode: Literal["active", "advisory"]
    limit_kw: float
    limit_source: str
    loads: dict[str, LoadTime]
    actions: list[ActionRecord]
    demand_response: list[DemandResponseOutcome]


class SiteSummary(_Payload):
    """The factory over one interval: its incomer, and what control did and why."""

    schema_: Literal["edge-agent/site-summary/1"] = Field(
        default="edge-agent/site-summary/1", alias="schema"
    )
    park: str
    site: str
    seq: int
    interval_start: datetime
    interval_end: datetime
    meter: str
    """The incomer device the figures come from (`control.meter`)."""
    energy_import_kwh: float | None
    reason: str | None = None
    """Why `energy_import_kwh` is None, as in the meter's device summary."""
    gap_start: datetime | None = None
    gap_end: datetime | None = None
    gap_energy_import_kwh: float | None = None
    """The meter's gap, as in its device summary."""
    power_avg_kw: float | None
    power_max_kw: float | None
    billing_window_start: datetime
    billing_window_demand_kw: float | None
    tariff_band: Literal["peak", "normal", "off_peak"]
    price_vnd_per_kwh: float
    cost_vnd: float | None
    co2_kg: float | None
    control: ControlSummary | None
    """None only when the agent was not running (`reason`): nothing was controlled."""
    outbox_dropped: int = 0
    historical: bool = False


class Status(_Payload):
    """Retained on the status topic: `online` when connected; the broker's Last Will says
    `offline` when the agent vanishes."""

    schema_: Literal["edge-agent/status/1"] = Field(default="edge-agent/status/1", alias="schema")
    state: Literal["online", "offline"]
    park: str
    site: str
    agent_version: str
    at: datetime | None
    """When the state was said; None in the Last Will, which the broker sends when the agent
    vanished, at a moment nobody stamped (the connect time would be a lie)."""
