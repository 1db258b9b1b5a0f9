"""No two machines of a park alike: sizes, loads, phases and seeds drawn from one generator."""

from __future__ import annotations

import random

from .base import Machine
from .batch_furnace import BatchFurnace
from .charger import Charger
from .chiller import Chiller
from .compressor import AirCompressor
from .production import Furnace, InjectionMoulder
from .pump import TankPump
from .pv import RooftopPv

__all__ = ["vary"]


def vary(machine: Machine, rng: random.Random) -> Machine:
    """`machine` resized and reseeded from `rng` (the park's, per factory), in place."""
    seed = rng.getrandbits(31)
    if isinstance(machine, InjectionMoulder):
        machine.cycle_s = rng.uniform(24, 40)
        machine.phase_s = rng.uniform(0, machine.cycle_s)
        machine.motor_kw_peak = rng.uniform(35, 55)
    elif isinstance(machine, Chiller):
        machine.seed = seed
        machine.load_kw_thermal = rng.uniform(150, 260)
        # Sized with a margin over the full-shift load, as a plant engineer would.
        machine.rated_kw = max(rng.uniform(60, 90), 1.3 * machine.load_kw_thermal / machine.cop)
        machine.supply_c = rng.uniform(6.5, 8.5)
    elif isinstance(machine, Furnace):
        machine.max_kw = rng.uniform(100, 160)
        machine.inputs["setpoint_c"] = rng.choice([650.0, 760.0, 850.0])
    elif isinstance(machine, AirCompressor):
        machine.seed = seed
        machine.rated_kw = rng.choice([37.0, 45.0, 55.0, 75.0])
        machine.fad_m3_min = machine.rated_kw * rng.uniform(0.16, 0.18)
        machine.demand_share = rng.uniform(0.45, 0.7)
        machine.receiver_m3 = rng.uniform(6, 10)
        machine.pressure_bar = rng.uniform(6.6, 7.4)
    elif isinstance(machine, BatchFurnace):
        machine.seed = seed
        machine.rated_kw = rng.uniform(100, 160)
    elif isinstance(machine, TankPump):
        machine.seed = seed
        machine.rated_kw = rng.uniform(15, 30)
        machine.flow_m3_h = machine.rated_kw * 2.7
        machine.draw_m3_h = machine.flow_m3_h * rng.uniform(0.35, 0.55)
        machine.tank_m3 = rng.uniform(30, 80)
        machine.level_pct = rng.uniform(50, 85)
    elif isinstance(machine, Charger | RooftopPv):
        machine.seed = seed
        if isinstance(machine, RooftopPv):
            machine.peak_kw = rng.uniform(150, 400)
    return machine
