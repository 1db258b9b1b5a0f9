"""The site file's cross-field rules, each written once, over the typed site.

A rule judges what no single field can: names that must be unique, and names that must refer
to another entry (a device's line, the meter, a load's or a generation source's device and
its points). Without them a wrong name would pass validation and leave the agent deciding on
nothing. Each rule returns every `Finding` (the path where the problem is written, and the
message), not only the first: the loader places them at their file, line and column, with
the file's other problems, and `SiteConfig`'s validator raises them for a site built in code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from drivers.registry import AnyDevice, protocol_of
from drivers.registry import Site as DriverSite
from edge_agent.control.config import ControlConfig, DeferrableConfig, LoadConfig

from .findings import Absent, Finding, Path_, did_you_mean

__all__ = ["Site", "site_findings"]


class Site(DriverSite, Protocol):
    """What the rules read of a site: `SiteConfig`, or the part of a file the loader could
    read as typed models when other parts are wrong."""

    @property
    def control(self) -> ControlConfig | None: ...


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_DEFERRABLE_POINTS = {
    "batch": ("waiting", "duration", "deadline", "active"),
    "energy": ("energy_needed", "deadline", "connected"),
}
"""The points the planner reads of a deferrable load's device, by its kind."""

_Devices = Mapping[str, tuple[int, AnyDevice]]
"""Each device by its name, with its index under `devices:`."""


def site_findings(site: Site) -> list[Finding]:
    """Every problem of the site that no single field shows, in the order of the sections."""
    findings = _unique(site.devices, "devices") + _unique(site.modbus_lines, "modbus_lines")
    for index, device in enumerate(site.devices):
        findings += [
            Finding(("devices", index, *f.path), f.message, f.absent)
            for f in protocol_of(device).check(device, site)
        ]
    if site.control is not None:
        devices = {device.name: (index, device) for index, device in enumerate(site.devices)}
        findings += _control(site.control, devices)
    return findings


def _unique(entries: Sequence[_Named], section: str) -> list[Finding]:
    """Every entry of `section` named as an earlier one, at its name."""
    first: dict[str, int] = {}
    findings = []
    for index, entry in enumerate(entries):
        if entry.name in first:
            findings.append(
                Finding(
                    (section, index, "name"),
                    f"two {section} are named {entry.name!r} (entries "
                    f"{first[entry.name] + 1} and {index + 1}); names must be unique",
                )
            )
        first.setdefault(entry.name, index)
    return findings


def _control(control: ControlConfig, devices: _Devices) -> list[Finding]:
    findings = []
    meter: Path_ = ("control", "meter")
    found = devices.get(control.meter)
    if found is None:
        findings.append(_no_device(meter, control.meter, devices))
    elif not any(p.role == "active_power_kw" for p in found[1].points.values()):
        findings.append(
            Finding(
                meter,
                f"device {control.meter!r} has no point with `role: active_power_kw`; the "
                "limiter needs the site's power (and, best, `role: import_energy_kwh`)",
                Absent(("devices", found[0], "points")),
            )
        )
    for index, load in enumerate(control.loads):
        findings += _load(("control", "loads", index), load, devices)
    for index, source in enumerate(control.generation):
        at: Path_ = ("control", "generation", index)
        found = devices.get(source.device)
        if found is None:
            findings.append(_no_device((*at, "device"), source.device, devices))
        else:
            where = (*at, "power") if "power" in source.model_fields_set else at
            findings += _points(source.device, found, [(where, source.power, False)])
    return findings


def _load(at: Path_, load: LoadConfig, devices: _Devices) -> list[Finding]:
    """A load's device exists, has every point the load names, and what the agent writes is
    declared writable."""
    found = devices.get(load.device)
    if found is None:
        return [_no_device((*at, "device"), load.device, devices)]
    wanted: list[tuple[Path_, str, bool]] = []  # (where, point, written by the agent)
    for key, point, written in (
        ("command", load.command, True),
        ("heartbeat", load.heartbeat, True),
        ("power", load.power, False),
    ):
        if point is not None:
            wanted.append(((*at, key) if key in load.model_fields_set else at, point, written))
    if load.band is not None:
        wanted.append(((*at, "band", "point"), load.band.point, False))
    if load.deferrable is not None:
        wanted += _deferrable_points((*at, "deferrable"), load.deferrable)
    return _points(load.device, found, wanted)


def _deferrable_points(at: Path_, deferrable: DeferrableConfig) -> list[tuple[Path_, str, bool]]:
    """The points the planner reads; of a batch queue's table, its first and last entries
    (a missing point is then reported once, not once an entry)."""
    wanted: list[tuple[Path_, str, bool]] = [
        ((*at, key) if key in deferrable.model_fields_set else at, getattr(deferrable, key), False)
        for key in _DEFERRABLE_POINTS[deferrable.kind]
    ]
    if deferrable.batch_power is not None:
        wanted.append(((*at, "batch_power"), deferrable.batch_power, False))
    queue = deferrable.queue
    if queue is None:
        return wanted
    for k in sorted({1, queue.length}):
        for key, point in zip(("duration", "deadline", "power"), queue.points(k), strict=True):
            if point is not None:
                wanted.append(((*at, "queue", key), point, False))
    return wanted


def _points(
    name: str, found: tuple[int, AnyDevice], wanted: list[tuple[Path_, str, bool]]
) -> list[Finding]:
    """Each wanted point is on the device, and writable where the agent writes it."""
    index, device = found
    findings = []
    for where, point, written in wanted:
        spec = device.points.get(point)
        if spec is None:
            findings.append(
                Finding(
                    where,
                    f"device {name!r} has no point {point!r}"
                    f"{did_you_mean(point, list(device.points))}",
                    Absent(("devices", index, "points"), point),
                )
            )
        elif written and not spec.writable:
            findings.append(
                Finding(
                    where,
                    f"point {name}/{point} is written by the agent but not declared "
                    "`writable: true` on the device",
                )
            )
    return findings


def _no_device(at: Path_, name: str, devices: _Devices) -> Finding:
    return Finding(
        at,
        f"no device named {name!r} under devices ({', '.join(sorted(devices))})"
        f"{did_you_mean(name, list(devices))}",
        Absent(("devices",), name),
    )
