"""A simulated day of the demo park through the whole stack, with the equipment's own books:
wall time, OPC UA step cost (values written per step), and each machine type's energy and
process violations.

Two ways of serving the machines, measured in separate runs:
- `machine`: each machine on an OPC UA server of its own (the park bench as it is);
- `plc`: each factory's machines on one server, its PLC, each under its node-id prefix
  (`simulators.opcua_server.served_map`), the site file reading the same prefixed maps.

    .venv/bin/python bench/equipment_day.py --hours 24 --serve plc
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.opcua.config import OpcUaDevice
from edge_agent.clock import Clock
from edge_agent.config.loader import load_modbus_model, load_opcua_model
from edge_agent.config.schema import SiteConfig
from simulators import events, park
from simulators.machines import PHYSICS, Controllable, Machine
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator, SimulatedUnit
from simulators.opcua_server import OpcUaSimulator, SimulatedMachine, served_map
from simulators.ports import free_port

SCENARIO = ROOT / "configs" / "scenarios" / "demo-park.yaml"

machines: list[Machine] = []
"""The physics of every machine served, in the scenario's order."""
servers: list[OpcUaSimulator] = []


class CountedSimulator(OpcUaSimulator):
    async def __aenter__(self) -> CountedSimulator:
        servers.append(self)
        await super().__aenter__()
        return self


@contextlib.asynccontextmanager
async def serve_factory_on_one_plc(
    scenario: park.Scenario,
    index: int,
    factory: park.FactorySpec,
    clock: Clock,
    work: Path,
    *,
    outages: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[int, list[str]]]:
    """`park.serve_factory` with one OPC UA server for all of the factory's machines."""
    rng = random.Random(f"{scenario.seed}/{factory.name}")
    served = [
        SimulatedMachine(
            served_map(load_opcua_model(m.model), m.name),
            park._varied(PHYSICS[m.model](), rng),
        )
        for m in factory.machines
    ]
    meter = MeterModel(
        clock,
        base_kw=factory.base_load_kw,
        seed=scenario.seed * 100 + index,
        shape=park._shifts(scenario.timezone, factory.night_share),
        extra_kw=lambda: sum(m.physics.grid_kw() for m in served),
    )
    points = load_modbus_model("eastron-sdm630").points
    async with contextlib.AsyncExitStack() as stack:
        modbus = await stack.enter_async_context(
            ModbusSimulator([SimulatedUnit(1, points, meter.values)])
        )
        plc = await stack.enter_async_context(
            CountedSimulator(
                served,
                clock=clock,
                port=free_port(),
                pki=work / factory.name / "plc",
                step_s=scenario.poll_interval_s,
            )
        )
        if outages is not None:
            outages["incomer"] = events.MeterSilence(modbus, 1)
            for m in factory.machines:  # a failure of one machine's link is the PLC's here
                outages[m.name] = events.OpcUaServerDown(plc)
        yield modbus.port, [plc.url] * len(served)


def prefixed_site(original: Any) -> Any:
    def site_config(*args: Any, **kwargs: Any) -> SiteConfig:
        config: SiteConfig = original(*args, **kwargs)
        devices = [
            device.model_copy(update={"points": served_map(device, device.name).points})
            if isinstance(device, OpcUaDevice)
            else device
            for device in config.devices
        ]
        return config.model_copy(update={"devices": devices})

    return site_config


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--serve", choices=["machine", "plc"], default="plc")
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    args = parser.parse_args()

    varied = park._varied

    def recording(machine: Machine, rng: random.Random) -> Machine:
        machines.append(varied(machine, rng))
        return machine

    # The bench patches the park module in its own process only.
    park._varied = recording
    setattr(park, "OpcUaSimulator", CountedSimulator)  # noqa: B010
    if args.serve == "plc":
        park.serve_factory = serve_factory_on_one_plc
        park.site_config = prefixed_site(park.site_config)
    scenario = park.load_scenario(args.scenario).model_copy(update={"duration_h": args.hours})
    models = [m.model for f in scenario.factories for m in f.machines]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        metrics = await park.simulate(scenario, Path(out))
    wall_s = time.perf_counter() - started

    steps = sum(s.stats.steps for s in servers)
    writes = sum(s.stats.writes for s in servers)
    by_model: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for model, machine in zip(models, machines, strict=True):
        row = by_model[model]
        row["count"] += 1
        row["energy_kwh"] += machine.energy_kwh
        for name, value in machine.violations().items():
            row[name] += value
        if isinstance(machine, Controllable):
            row["failsafe_trips"] += machine.failsafe_trips
    print(
        f"{args.hours:g} simulated hours, {len(machines)} machines on {len(servers)} OPC UA "
        f"servers ({args.serve}): {wall_s:.0f} s wall"
    )
    print(
        f"steps {steps}, values written {writes} ({writes / max(1, steps):.1f} per server step, "
        f"{writes / max(1, steps) * len(servers) / max(1, len(machines)):.1f} per machine step)"
    )
    for model, row in sorted(by_model.items()):
        extra = ", ".join(
            f"{k} {v:.1f}" for k, v in row.items() if k not in ("count", "energy_kwh")
        )
        print(f"  {model:18} x{row['count']:.0f}  {row['energy_kwh']:9.1f} kWh  {extra}")
    print(json.dumps(metrics["factories"], indent=1, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
