"""How a plant engineer would declare each kind of bench equipment as a load in `control:`.

What may be shed, in which order, and where the process says stop: a charger pauses first
(its session has hours to go), then the pump (the tank rides through), the compressors (a
receiver holds a minute or two; one running unloaded may be stopped until cut-in) and the
chiller (its storage holds half an hour); the moulders and PV are not loads. The batch
furnace and the chargers are also deferrable: the planner moves their work into cheap
hours. Band margins are wide enough for a decision to reach the machine through a poll, a
control cycle and a PLC scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["Mode", "load_for"]

Mode = Literal["agent", "limiter", "none"]
"""`agent`: the limiter and the planner; `limiter`: a classic priority limiter alone (the
same sheddable loads, nothing planned); `none`: no control, the machines on their own."""

_POLICIES: dict[str, dict[str, Any]] = {
    "air-compressor": {
        "rated_kw": 55,
        "priority": 30,
        "sheddable": True,
        "min_on_s": 120,
        "min_off_s": 60,
        "max_off_s": 180,
        "idle_share": 0.4,
        "band": {"point": "pressure_bar", "minimum": 6.0, "margin": 0.6},
    },
    "process-chiller": {
        "rated_kw": 75,
        "priority": 40,
        "sheddable": True,
        "min_on_s": 300,
        "min_off_s": 300,
        "max_off_s": 2400,
        "band": {"point": "supply_temp_c", "maximum": 12.0, "margin": 1.0},
    },
    "tank-pump": {
        "rated_kw": 22,
        "priority": 20,
        "sheddable": True,
        "min_on_s": 120,
        "min_off_s": 120,
        "max_off_s": 3600,
        "band": {"point": "level_pct", "minimum": 15.0, "margin": 6.0},
    },
    "batch-furnace": {
        "rated_kw": 140,
        "priority": 60,
        "min_on_s": 0,
        "min_off_s": 0,
        "max_off_s": 86_000,
        "deferrable": {"kind": "batch", "batch_power": "batch_kw", "queue": {"length": 6}},
    },
    "ev-charger": {
        "rated_kw": 7.4,
        "priority": 10,
        "sheddable": True,
        "min_on_s": 60,
        "min_off_s": 60,
        "max_off_s": 7200,
        "deferrable": {"kind": "energy", "deadline": "departure_in_s"},
    },
    "forklift-charger": {
        "rated_kw": 8,
        "priority": 10,
        "sheddable": True,
        "min_on_s": 60,
        "min_off_s": 60,
        "max_off_s": 7200,
        "deferrable": {"kind": "energy", "deadline": "departure_in_s"},
    },
}


def load_for(
    name: str, model: str, mode: Mode, *, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The `control.loads` entry for a machine, or None if it is not a load in `mode`.

    `overrides` (a scenario's `load:`) replace the policy's fields;
    a `band` mapping is merged into the policy's band (`band: null` removes it)."""
    policy = _POLICIES.get(model)
    if policy is None or mode == "none":
        return None
    load = {"name": name, "device": name, "heartbeat": "heartbeat", **policy}
    for key, value in (overrides or {}).items():
        band = load.get("band")
        if key == "band" and isinstance(value, Mapping) and isinstance(band, Mapping):
            load["band"] = {**band, **value}
        elif key == "band" and value is None:
            load.pop("band", None)
        else:
            load[key] = value
    if mode == "limiter":  # the classic limiter: sheds for the limit, nothing else
        load.pop("idle_share", None)
        if "deferrable" in load:
            del load["deferrable"]
            if not load.get("sheddable"):
                return None
    return load
