"""The `control:` section's references, each checked where it is written.

A load names a device and points on it; the meter names a device whose power it reads. A
wrong name would otherwise pass validation and leave the agent deciding on nothing, so every
reference is checked against the devices as resolved from the catalogue, each problem at
its own line, all of them at once, with "did you mean".
"""

from __future__ import annotations

from typing import Any

from edge_agent.control.config import BatchQueueConfig, DeferrableConfig

from .located import Located, Path_
from .problems import Problem, did_you_mean, problem_at

__all__ = ["REPORTED", "control_references"]

REPORTED = (
    "is not a device",
    "which is not under devices",
    "has no point",
    "not declared `writable",
)
"""The site model's own checks of the same references (for configs built in code): in a
file they are reported here, where they are written, and not again at the top."""

_DEFERRABLE_POINTS = {
    "batch": ("waiting", "duration", "deadline", "active"),
    "energy": ("energy_needed", "deadline", "connected"),
}


def control_references(doc: Located) -> list[Problem]:
    control = doc.data.get("control")
    devices = doc.data.get("devices")
    if not isinstance(control, dict) or not isinstance(devices, list):
        return []
    by_name = {
        d["name"]: d for d in devices if isinstance(d, dict) and isinstance(d.get("name"), str)
    }
    problems: list[Problem] = []
    meter = control.get("meter")
    if isinstance(meter, str):
        device = by_name.get(meter)
        if device is None:
            problems.append(_unknown_device(doc, ("control", "meter"), meter, by_name))
        elif not any(
            isinstance(p, dict) and p.get("role") == "active_power_kw"
            for p in (device.get("points") or {}).values()
        ):
            problems.append(
                problem_at(
                    doc,
                    ("control", "meter"),
                    f"device {meter!r} has no point with `role: active_power_kw`; the limiter "
                    "needs the site's power (and, best, `role: import_energy_kwh`)",
                )
            )
    loads = control.get("loads")
    for index, load in enumerate(loads if isinstance(loads, list) else []):
        if isinstance(load, dict):
            problems += _load(doc, ("control", "loads", index), load, by_name)
    sources = control.get("generation")
    for index, source in enumerate(sources if isinstance(sources, list) else []):
        if isinstance(source, dict):
            problems += _generation(doc, ("control", "generation", index), source, by_name)
    return problems


def _generation(
    doc: Located, path: Path_, source: dict[str, Any], devices: dict[str, dict[str, Any]]
) -> list[Problem]:
    """A generation source's device exists and has its power point."""
    name, point = source.get("device"), source.get("power", "power_kw")
    if not isinstance(name, str):
        return []
    if name not in devices:
        return [_unknown_device(doc, (*path, "device"), name, devices)]
    points = devices[name].get("points") or {}
    if not isinstance(point, str) or isinstance(points.get(point), dict):
        return []
    return [
        problem_at(
            doc,
            (*path, "power") if "power" in source else path,
            f"device {name!r} has no point {point!r}"
            f"{did_you_mean(point, [str(p) for p in points])}",
        )
    ]


def _load(
    doc: Located, path: Path_, load: dict[str, Any], devices: dict[str, dict[str, Any]]
) -> list[Problem]:
    name = load.get("device")
    if not isinstance(name, str):
        return []
    device = devices.get(name)
    if device is None:
        return [_unknown_device(doc, (*path, "device"), name, devices)]
    points = device.get("points") or {}
    problems = []
    wanted: list[tuple[Path_, str, bool]] = []  # (where, point, written by the agent)
    for key, default, written in (
        ("command", "enable", True),
        ("heartbeat", None, True),
        ("power", "power_kw", False),
    ):
        point = load.get(key, default)
        if isinstance(point, str):
            wanted.append(((*path, key) if key in load else path, point, written))
    band = load.get("band")
    if isinstance(band, dict) and isinstance(band.get("point"), str):
        wanted.append(((*path, "band", "point"), band["point"], False))
    deferrable = load.get("deferrable")
    if isinstance(deferrable, dict) and deferrable.get("kind") in _DEFERRABLE_POINTS:
        for key in _DEFERRABLE_POINTS[str(deferrable["kind"])]:
            point = deferrable.get(key, DeferrableConfig.model_fields[key].default)
            where: Path_ = (
                (*path, "deferrable", key) if key in deferrable else (*path, "deferrable")
            )
            wanted.append((where, str(point), False))
        wanted += _queue_points(path, deferrable)
    for where, point, written in wanted:
        spec = points.get(point)
        if not isinstance(spec, dict):
            problems.append(
                problem_at(
                    doc,
                    where,
                    f"device {name!r} has no point {point!r}"
                    f"{did_you_mean(point, [str(p) for p in points])}",
                )
            )
        elif written and not spec.get("writable"):
            problems.append(
                problem_at(
                    doc,
                    where,
                    f"point {name}/{point} is written by the agent but not declared "
                    "`writable: true` on the device",
                )
            )
    return problems


def _queue_points(path: Path_, deferrable: dict[str, Any]) -> list[tuple[Path_, str, bool]]:
    """A batch queue's table must be on the device: its first and last entries are checked
    (a missing point is then reported once, not once an entry)."""
    queue, power = deferrable.get("queue"), deferrable.get("batch_power")
    wanted: list[tuple[Path_, str, bool]] = []
    if isinstance(power, str):
        wanted.append(((*path, "deferrable", "batch_power"), power, False))
    if not isinstance(queue, dict):
        return wanted
    try:
        table = BatchQueueConfig.model_validate(queue)
    except ValueError:
        return wanted  # the schema reports what is wrong with the table itself
    for k in sorted({1, table.length}):
        for key, point in zip(("duration", "deadline", "power"), table.points(k), strict=True):
            if point is not None:
                wanted.append(((*path, "deferrable", "queue", key), point, False))
    return wanted


def _unknown_device(
    doc: Located, path: Path_, name: str, devices: dict[str, dict[str, Any]]
) -> Problem:
    return problem_at(
        doc,
        path,
        f"no device named {name!r} under devices ({', '.join(sorted(devices))})"
        f"{did_you_mean(name, list(devices))}",
    )
