"""The device catalogue: one YAML file per device model in `edge_agent/catalogue/`.

A site names `model: eastron-sdm630` and inherits that file's points and device settings;
whatever the site writes next to `model:` overrides them, and a point set to `null` is
dropped. Marks are carried over, so an error in an inherited point names the catalogue file.

A catalogue file:

    model: eastron-sdm630          # must equal the file name
    vendor: Eastron
    product: SDM630 three-phase energy meter
    protocol: modbus
    device: {max_gap_registers: 20}          # device settings the model needs
    point_defaults: {table: input, type: float32}
    points:
      total_power_kw: {address: 52, scale: 0.001, unit: kW, role: active_power_kw}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .located import Located, Path_

__all__ = [
    "BUILTIN_CATALOGUE",
    "CatalogueProblem",
    "apply_point_defaults",
    "catalogue_dirs",
    "find_model",
    "known_models",
    "merge_model",
]


def _builtin_catalogue() -> Path:
    """The catalogue shipped inside the package, found through the import system, so that an
    installed wheel finds it as a clone or an editable install does. A wheel installs as
    files, so the package's resources are a folder on disk."""
    folder = resources.files("edge_agent") / "catalogue"
    return folder if isinstance(folder, Path) else Path(str(folder))


BUILTIN_CATALOGUE = _builtin_catalogue()
_CATALOGUE_KEYS = {
    "model",
    "vendor",
    "product",
    "description",
    "protocol",
    "device",
    "point_defaults",
    "points",
}


@dataclass(frozen=True, slots=True)
class CatalogueProblem:
    path: Path_
    message: str
    in_catalogue: Located | None = None
    """Set when the problem is inside the catalogue file rather than the site file."""


def catalogue_dirs(site_file: Path) -> list[Path]:
    """Where models are looked up, first match first: beside the site file, then the
    folders in $EDGE_AGENT_CATALOGUE, then the built-in catalogue."""
    dirs = [site_file.resolve().parent.parent / "devices", site_file.resolve().parent / "devices"]
    dirs += [Path(p) for p in os.environ.get("EDGE_AGENT_CATALOGUE", "").split(os.pathsep) if p]
    dirs.append(BUILTIN_CATALOGUE)
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in unique:
            unique.append(d.resolve())
    return unique


def find_model(model: str, dirs: list[Path]) -> Path | None:
    for directory in dirs:
        candidate = directory / f"{model}.yaml"
        if candidate.is_file():
            return candidate
    return None


def known_models(dirs: list[Path]) -> list[str]:
    return sorted({p.stem for d in dirs for p in d.glob("*.yaml")})


def merge_model(doc: Located, device_path: Path_, catalogue: Located) -> list[CatalogueProblem]:
    """Merge the catalogue entry into the device at `device_path` of `doc`.

    The merged device replaces the one in `doc.data`; the device's mapping itself is not
    changed, since a YAML alias may share it (or its points) with another place."""
    problems: list[CatalogueProblem] = []
    entry = catalogue.data
    if not isinstance(entry, dict):
        return [CatalogueProblem((), "a catalogue file must be a mapping", catalogue)]
    for key in entry:
        if key not in _CATALOGUE_KEYS:
            problems.append(
                CatalogueProblem(
                    (key,),
                    f"unknown catalogue key {key!r}; expected one of "
                    f"{', '.join(sorted(_CATALOGUE_KEYS))}",
                    catalogue,
                )
            )
    for key in ("device", "point_defaults", "points"):
        if not isinstance(entry.get(key, {}), dict):
            problems.append(CatalogueProblem((key,), f"{key} must be a mapping", catalogue))
    if problems:
        return problems

    device: dict[str, Any] = _get(doc.data, device_path)
    merged: dict[str, Any] = {}
    for key, value in entry.get("device", {}).items():
        merged[key] = value
        doc.graft(catalogue, ("device", key), (*device_path, key))
    for key, value in device.items():
        if key not in ("points", "point_defaults"):
            merged[key] = value

    defaults = {**entry.get("point_defaults", {}), **(device.get("point_defaults") or {})}
    points: dict[str, Any] = {}
    for name, point in entry.get("points", {}).items():
        if isinstance(point, dict):
            points[name] = {**defaults, **point}
            doc.graft(catalogue, ("points", name), (*device_path, "points", name))
        else:
            points[name] = point
            doc.graft(catalogue, ("points", name), (*device_path, "points", name))
    for name, override in (device.get("points") or {}).items():
        if override is None:
            points.pop(name, None)
        elif isinstance(override, dict) and isinstance(points.get(name), dict):
            points[name] = {**points[name], **override}
        elif isinstance(override, dict):
            points[name] = {**defaults, **override}
        else:
            points[name] = override
    merged["points"] = points
    _get(doc.data, device_path[:-1])[device_path[-1]] = merged
    return problems


def apply_point_defaults(device: dict[str, Any]) -> None:
    """For a device without a model: fill its points from its own `point_defaults`.

    The points get a new mapping: an alias may share the written one with another device,
    which must not receive this device's defaults."""
    defaults = device.pop("point_defaults", None)
    points = device.get("points")
    if not isinstance(defaults, dict) or not isinstance(points, dict):
        return
    device["points"] = {
        name: {**defaults, **point} if isinstance(point, dict) else point
        for name, point in points.items()
    }


def _get(data: Any, path: Path_) -> Any:
    for part in path:
        data = data[part]
    return data
