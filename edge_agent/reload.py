"""What a new site file changes in a running agent, in poller units.

A poller unit is what one `Poller` serves: a line of the driver registry (`drivers/registry.py`)
with every device on it, such as a Modbus line (a declared `modbus_lines:` entry, or the host
and port of `modbus-tcp` devices) or one OPC UA device. A unit whose line settings and devices
are all equal keeps its poller running untouched; a unit with any change restarts as a whole,
since its driver plans one request queue for all of its devices. So a device changing on a
shared RS-485 bus restarts that bus's poller only.

Settings that are not per device (the site, the broker, the outbox, the summaries, the
tariff, the metrics endpoint, control) are wired into long-lived parts of the agent; a change
to them is reported so the agent can say it needs a restart, and is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.registry import PROTOCOLS, Line, LineKey, lines

from .config.schema import SiteConfig

__all__ = ["RESTART_SECTIONS", "ReloadPlan", "plan_reload", "units_of", "with_devices"]

RESTART_SECTIONS = (
    "site",
    "broker",
    "summary",
    "outbox",
    "metrics",
    "tariff",
    "emissions",
    "control",
)
"""The site file's sections that a reload does not apply."""


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The difference between the running configuration and a new one."""

    start: list[LineKey] = field(default_factory=list)
    """Units only the new file has."""
    stop: list[LineKey] = field(default_factory=list)
    """Units only the running configuration has."""
    restart: list[LineKey] = field(default_factory=list)
    """Units in both whose line or devices changed."""
    keep: list[LineKey] = field(default_factory=list)
    """Units whose poller keeps running untouched."""
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    """Device names, in the order of their site file."""
    needs_restart: list[str] = field(default_factory=list)
    """Sections of `RESTART_SECTIONS` that differ: kept as they run."""

    @property
    def touches_devices(self) -> bool:
        return bool(self.start or self.stop or self.restart)

    def describe(self) -> str:
        """One line for the log: what the reload does to the devices."""
        parts = [
            f"{verb} {', '.join(names)}"
            for verb, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if names
        ]
        pollers = [
            f"{verb} {', '.join(_label(k) for k in keys)}"
            for verb, keys in (
                ("starting", self.start),
                ("stopping", self.stop),
                ("restarting", self.restart),
            )
            if keys
        ]
        devices = "; ".join(parts) or "no device changed"
        kept = f"{len(self.keep)} poller{'s' if len(self.keep) != 1 else ''} kept running"
        return f"{devices}; " + "; ".join([*pollers, kept])


def _label(key: LineKey) -> str:
    protocol, name = key
    return f"{PROTOCOLS[protocol].line_noun} {name}"


def units_of(config: SiteConfig) -> dict[LineKey, Line]:
    """Every poller unit of the site, in the registry's order (Modbus lines first), each
    protocol's in the order of the file."""
    return {line.key: line for line in lines(config)}


def plan_reload(running: SiteConfig, new: SiteConfig) -> ReloadPlan:
    """Which pollers to start, stop, restart or keep to go from `running` to `new`."""
    old_units, new_units = units_of(running), units_of(new)
    plan = ReloadPlan(
        start=[k for k in new_units if k not in old_units],
        stop=[k for k in old_units if k not in new_units],
        restart=[k for k in new_units if k in old_units and new_units[k] != old_units[k]],
        keep=[k for k in new_units if k in old_units and new_units[k] == old_units[k]],
        needs_restart=[s for s in RESTART_SECTIONS if getattr(running, s) != getattr(new, s)],
    )
    old_devices = {d.name: d for d in running.devices}
    new_devices = {d.name: d for d in new.devices}
    plan.added.extend(n for n in new_devices if n not in old_devices)
    plan.removed.extend(n for n in old_devices if n not in new_devices)
    plan.changed.extend(
        n for n, d in new_devices.items() if n in old_devices and old_devices[n] != d
    )
    return plan


def with_devices(running: SiteConfig, new: SiteConfig) -> SiteConfig:
    """`running` with `new`'s devices and lines: what a reload applies.

    Validated again as a whole, so that a running control section whose meter or loads the
    new file drops (or changes beyond what control may write) is refused with the reason,
    rather than leaving the controller pointing at a device nobody polls. Raises pydantic's
    ValidationError.
    """
    fields = {name: getattr(running, name) for name in SiteConfig.model_fields}
    fields.update(devices=list(new.devices), modbus_lines=list(new.modbus_lines))
    return SiteConfig.model_validate(fields)
