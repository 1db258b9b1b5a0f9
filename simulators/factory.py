"""One factory of a scenario: its plant models, served over the protocols or in-process.

`build_plant` makes the meter and the machines from the scenario and its seed, the same
every time. `serve_plant` puts them on loopback as a plant has them: the incomer meter on
Modbus TCP, the machines on one OPC UA server (the factory's PLC), each machine's node map
under its own prefix. `direct_plant` steps the same models in-process and gives the agent a
driver that reads and writes them directly: for the baselines of a scenario's score.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from drivers.base import Driver
from drivers.opcua.config import OpcUaDevice
from edge_agent.clock import Clock
from edge_agent.config.loader import load_modbus_model, load_opcua_model
from edge_agent.config.schema import Device

from .direct import DirectDevice, DirectDriver
from .equipment import Machine, vary
from .events import DeviceOutage, MeterSilence, OpcUaServerDown
from .machine_params import apply_params
from .machines import PHYSICS
from .meter import MeterModel
from .modbus_server import ModbusSimulator, SimulatedUnit
from .opcua_server import OpcUaSimulator, SimulatedMachine, served_map
from .ports import free_port
from .scenario import FactorySpec, Scenario

__all__ = ["Plant", "build_plant", "connect_direct", "direct_plant", "serve_plant"]


@dataclass
class Plant:
    name: str
    meter: MeterModel
    machines: dict[str, Machine]
    maps: dict[str, OpcUaDevice]
    """Each machine's node map as served (prefixed by its name)."""
    meter_port: int | None = None
    url: str | None = None
    """The PLC's endpoint, when served over OPC UA."""
    outages: dict[str, DeviceOutage] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)


def _shifts(zone: str, night_share: float) -> Callable[[float], float]:
    tz = ZoneInfo(zone)

    def shape(t: float) -> float:
        moment = datetime.fromtimestamp(t, tz)
        hour = moment.hour + moment.minute / 60
        day = 6 <= hour < 22
        ramp = min(1.0, abs(hour - 6) / 0.5, abs(hour - 22) / 0.5)  # half-hour ramps
        level = 1.0 if day else night_share
        return night_share + (level - night_share) * ramp if day else level

    return shape


def build_plant(scenario: Scenario, index: int, factory: FactorySpec, clock: Clock) -> Plant:
    """The factory's models; no two machines alike, all drawn from the scenario's seed,
    then the scenario's `params` set on them (what it sets wins, the draws stay the same)."""
    rng = random.Random(f"{scenario.seed}/{factory.name}")
    machines = {
        m.name: apply_params(vary(PHYSICS[m.model](), rng), m.model, m.params)
        for m in factory.machines
    }
    maps = {m.name: served_map(load_opcua_model(m.model), m.name) for m in factory.machines}
    meter = MeterModel(
        clock,
        base_kw=factory.base_load_kw,
        seed=scenario.seed * 100 + index,
        shape=_shifts(scenario.timezone, factory.night_share),
        extra_kw=lambda: sum(m.grid_kw() for m in machines.values()),
    )
    return Plant(factory.name, meter, machines, maps)


@contextlib.asynccontextmanager
async def serve_plant(
    plant: Plant, clock: Clock, work: Path, *, step_s: float
) -> AsyncIterator[Plant]:
    """The meter on Modbus TCP and the machines on one OPC UA server, on free ports."""
    points = load_modbus_model("eastron-sdm630").points
    async with contextlib.AsyncExitStack() as stack:
        modbus = await stack.enter_async_context(
            ModbusSimulator([SimulatedUnit(1, points, plant.meter.values)])
        )
        plant.meter_port = modbus.port
        plant.outages["incomer"] = MeterSilence(modbus, 1)
        if plant.machines:
            plc = await stack.enter_async_context(
                OpcUaSimulator(
                    [
                        SimulatedMachine(plant.maps[name], machine)
                        for name, machine in plant.machines.items()
                    ],
                    clock=clock,
                    port=free_port(),
                    pki=work / plant.name / "plc",
                    step_s=step_s,
                )
            )
            plant.url = plc.url
            for name in plant.machines:  # the PLC down takes all its machines with it
                plant.outages[name] = OpcUaServerDown(plc)
        yield plant


@dataclass(slots=True)
class _Silence:
    plant: Plant
    device: str

    async def begin(self) -> None:
        self.plant.silent.add(self.device)

    async def end(self) -> None:
        self.plant.silent.discard(self.device)


@contextlib.asynccontextmanager
async def direct_plant(plant: Plant, clock: Clock, *, step_s: float) -> AsyncIterator[Plant]:
    """The machines stepped every `step_s` on the clock, in-process, as the PLC would."""

    async def step_forever() -> None:
        while True:
            await clock.sleep(step_s)
            now = clock.now()
            for machine in plant.machines.values():
                machine.step(step_s, now)

    for device in ("incomer", *plant.machines):
        plant.outages[device] = _Silence(plant, device)
    stepper = asyncio.create_task(step_forever(), name=f"plant {plant.name}")
    clock.track(stepper)
    try:
        yield plant
    finally:
        stepper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stepper


def connect_direct(plant: Plant, clock: Clock) -> Callable[[Sequence[Device]], Driver]:
    """The agent's `connect`: its devices read and written in the plant models."""

    def device(name: str) -> DirectDevice:
        if name == "incomer":
            return DirectDevice(values=plant.meter.values)
        machine = plant.machines[name]
        return DirectDevice(
            values=machine.values,
            inputs=machine.inputs,
            written=lambda point: machine.written(point, clock.now()),
        )

    devices = {name: device(name) for name in ("incomer", *plant.machines)}

    def connect(configs: Sequence[Device]) -> Driver:
        return DirectDriver(configs, devices, silent=plant.silent)

    return connect
