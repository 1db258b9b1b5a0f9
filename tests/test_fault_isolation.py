"""A dead meter never stops the agent or the other meters, and is back without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_modbus_model, load_site
from edge_agent.model import Quality
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator, SimulatedUnit
from simulators.ports import free_port


async def test_one_dead_meter_leaves_the_other_polling_and_recovers(
    tmp_path: Path, clock: SimClock
) -> None:
    points = load_modbus_model("eastron-sdm630").points
    live_meter, dead_meter = MeterModel(clock, seed=1), MeterModel(clock, seed=2)
    dead_port = free_port()
    site = tmp_path / "site.yaml"
    async with ModbusSimulator([SimulatedUnit(1, points, live_meter.values)]) as live:
        site.write_text(f"""
site: {{name: press-shop, park: test-park}}
devices:
  - {{name: live, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {live.port},
     timeout_s: 0.2}}
  - {{name: dead, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {dead_port},
     timeout_s: 0.2, reconnect_initial_s: 1, reconnect_max_s: 8}}
""")
        agent = Agent(load_site(site), clock, publish=False)
        live_poller, dead_poller = agent.pollers
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run(stop))
            await agent.started.wait()
            await clock.advance(60)

            live_stats = live_poller.stats.devices["live"]
            assert live_stats.polls == 61  # every tick from 0 to 60 s
            assert live_stats.overruns == 0
            assert dead_poller.stats.devices["dead"].polls == 0
            assert dead_poller.stats.connection_failures >= 6  # backoff capped at 8 s
            dead = agent.image.get("dead/total_power_kw", clock.now())
            assert dead is not None
            assert dead.quality is Quality.BAD
            live_reading = agent.image.get("live/total_power_kw", clock.now())
            assert live_reading is not None
            assert live_reading.quality is Quality.GOOD

            # The meter comes back on its address: polled again within one backoff period.
            async with ModbusSimulator(
                [SimulatedUnit(1, points, dead_meter.values)], port=dead_port
            ):
                await clock.advance(10)
                back = agent.image.get("dead/total_power_kw", clock.now())
                assert back is not None
                assert back.quality is Quality.GOOD
                assert dead_poller.stats.devices["dead"].polls > 0
                stop.set()
    assert live_poller.stats.devices["live"].polls == 71


async def test_a_meter_lost_mid_run_goes_bad_and_is_reconnected(
    tmp_path: Path, clock: SimClock
) -> None:
    points = load_modbus_model("eastron-sdm630").points
    meter = MeterModel(clock, seed=3)
    port = free_port()
    site = tmp_path / "site.yaml"
    site.write_text(f"""
site: {{name: press-shop, park: test-park}}
devices:
  - {{name: m, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {port},
     reconnect_initial_s: 1, reconnect_max_s: 4}}
""")
    agent = Agent(load_site(site), clock, publish=False)
    [poller] = agent.pollers
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        await agent.started.wait()
        async with ModbusSimulator([SimulatedUnit(1, points, meter.values)], port=port):
            await clock.advance(10)
        # The meter reboots: its connections are closed under the agent.
        await clock.advance(10)
        lost = agent.image.get("m/total_power_kw", clock.now())
        assert lost is not None
        assert lost.quality is Quality.BAD
        assert poller.stats.connection_failures >= 1
        async with ModbusSimulator([SimulatedUnit(1, points, meter.values)], port=port):
            await clock.advance(10)
            back = agent.image.get("m/total_power_kw", clock.now())
            assert back is not None
            assert back.quality is Quality.GOOD
            stop.set()
