"""Five units on one line, one of them dead: the others keep their rate; the dead one is
read again when it comes back, without a restart. Over a TCP gateway, RTU over TCP, and a
serial line (a pseudo-terminal pair standing in for the RS-485 adapter)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_modbus_model, load_site
from edge_agent.model import Quality
from simulators.faults import Fault
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator, SimulatedUnit
from simulators.null_modem import null_modem
from tests.conftest import START

UNITS = [1, 2, 3, 4, 5]
DEAD = 3


@contextlib.asynccontextmanager
async def line(transport: str, clock: SimClock) -> AsyncIterator[tuple[ModbusSimulator, str]]:
    """A simulator with five meters behind one line, and the site's `modbus_lines` entry."""
    points = load_modbus_model("eastron-sdm630").points
    units = [SimulatedUnit(u, points, MeterModel(clock, seed=u).values) for u in UNITS]
    if transport == "serial":
        async with (
            null_modem() as (agent_end, device_end),
            ModbusSimulator(units, serial_port=device_end, baudrate=115200) as simulator,
        ):
            yield simulator, f"{{transport: serial, serial_port: {agent_end}, baudrate: 115200"
        return
    framing = "mbap" if transport == "tcp" else "rtu"
    async with ModbusSimulator(units, framing=framing) as simulator:
        yield simulator, f"{{transport: {transport}, host: 127.0.0.1, port: {simulator.port}"


@pytest.mark.parametrize("transport", ["tcp", "rtu-over-tcp", "serial"])
async def test_a_dead_unit_does_not_slow_the_others_and_comes_back(
    transport: str, tmp_path: Path
) -> None:
    clock = SimClock(START, io_grace_s=0.25)
    async with line(transport, clock) as (simulator, line_yaml):
        devices = "\n".join(
            f"  - {{name: meter-{u}, driver: modbus, line: bus, unit: {u}, "
            f"model: eastron-sdm630, degraded_retry_max_s: 20}}"
            for u in UNITS
        )
        site = tmp_path / "site.yaml"
        site.write_text(f"""
site: {{name: press-shop, park: test-park}}
modbus_lines:
  - {{name: bus, {line_yaml.lstrip("{")}, timeout_s: 0.3}}
devices:
{devices}
""")
        agent = Agent(load_site(site), clock, publish=False)
        [poller] = agent.pollers
        stats = poller.stats.devices
        simulator.unit(DEAD).fault = Fault.no_answer()
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run(stop))
            await agent.started.wait()
            await clock.advance(120)

            for unit in UNITS:
                if unit != DEAD:
                    assert stats[f"meter-{unit}"].polls >= 0.9 * 120, (unit, stats)
                    assert stats[f"meter-{unit}"].errors == 0
            dead = stats[f"meter-{DEAD}"]
            assert dead.polls == 0
            assert dead.degraded
            assert dead.errors < 0.2 * 120  # polled rarely (jittered backoff), not every second
            assert poller.stats.connection_failures == 0  # the line itself stayed up
            reading = agent.image.get(f"meter-{DEAD}/total_power_kw", clock.now())
            assert reading is not None
            assert reading.quality is Quality.BAD

            simulator.unit(DEAD).fault = None
            await clock.advance(25)  # one degraded retry period at most
            assert stats[f"meter-{DEAD}"].polls > 0
            assert not stats[f"meter-{DEAD}"].degraded
            back = agent.image.get(f"meter-{DEAD}/total_power_kw", clock.now())
            assert back is not None
            assert back.quality is Quality.GOOD
            stop.set()


async def test_a_gateway_gets_no_more_connections_than_it_allows(tmp_path: Path) -> None:
    clock = SimClock(START)
    points = load_modbus_model("eastron-sdm630").points
    units = [SimulatedUnit(u, points, MeterModel(clock, seed=u).values) for u in UNITS]
    async with ModbusSimulator(units) as simulator:
        devices = "\n".join(
            f"  - {{name: meter-{u}, driver: modbus, line: gw, unit: {u}, model: eastron-sdm630}}"
            for u in UNITS
        )
        site = tmp_path / "site.yaml"
        site.write_text(f"""
site: {{name: press-shop, park: test-park}}
modbus_lines:
  - {{name: gw, transport: tcp, host: 127.0.0.1, port: {simulator.port}, max_connections: 2,
     pause_s: 0.01}}
devices:
{devices}
""")
        agent = Agent(load_site(site), clock, publish=False)
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run(stop))
            await agent.started.wait()
            await clock.advance(10)
            assert simulator.connections() == 2
            stats = agent.pollers[0].stats.devices
            # Ticks 0 to 9 s are done; the one at 10 s is waiting out the pause between its
            # two requests (the SDM630 map takes two), which costs clock time as on a line.
            assert all(stats[f"meter-{u}"].polls == 10 for u in UNITS)
            stop.set()
