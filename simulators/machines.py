"""The physics behind each OPC UA node map of the catalogue (models: `simulators.equipment`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from .equipment import (
    AirCompressor,
    BatchFurnace,
    Charger,
    Chiller,
    Controllable,
    Furnace,
    InjectionMoulder,
    Machine,
    RooftopPv,
    TankPump,
    vary,
)

__all__ = [
    "PHYSICS",
    "AirCompressor",
    "BatchFurnace",
    "Charger",
    "Chiller",
    "Controllable",
    "Furnace",
    "InjectionMoulder",
    "Machine",
    "RooftopPv",
    "TankPump",
    "vary",
]

PHYSICS: dict[str, Callable[[], Machine]] = {
    "electric-furnace": Furnace,
    "injection-moulder": InjectionMoulder,
    "process-chiller": Chiller,
    "air-compressor": AirCompressor,
    "batch-furnace": BatchFurnace,
    "tank-pump": TankPump,
    "ev-charger": partial(Charger, kind="car", rated_kw=11.0),
    "forklift-charger": partial(Charger, kind="forklift", rated_kw=8.0),
    "rooftop-pv": RooftopPv,
}
"""The physics behind each OPC UA node map of the catalogue, by model name."""
