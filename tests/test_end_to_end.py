"""Simulator -> agent -> Mosquitto -> subscriber, all real, on free loopback ports."""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import timedelta
from pathlib import Path

import aiomqtt
import pytest

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_site
from simulators.broker import MosquittoBroker
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator


def _float32(value: float) -> float:
    """What a float32 register holds for `value`."""
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


def write_site(tmp_path: Path, modbus_port: int, mqtt_port: int) -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(f"""
site: {{name: press-shop, park: test-park}}
broker: {{host: 127.0.0.1, port: {mqtt_port}}}
summary: {{interval_s: 60}}
devices:
  - name: main-meter
    driver: modbus-tcp
    model: eastron-sdm630
    host: 127.0.0.1
    port: {modbus_port}
""")
    return site


async def test_summary_energy_equals_the_meter_register_delta(
    tmp_path: Path,
    clock: SimClock,
    meter: MeterModel,
    meter_server: ModbusSimulator,
    broker: MosquittoBroker,
) -> None:
    config = load_site(write_site(tmp_path, meter_server.port, broker.port))
    agent = Agent(config, clock)
    stop = asyncio.Event()
    topic = "energy/v1/test-park/press-shop/devices/main-meter/summary"

    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
        await subscriber.subscribe(topic, qos=1)
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run(stop))
            await agent.started.wait()
            # Two full intervals and the settle time of the second.
            await clock.advance(60 * 2 + 5)
            summaries = []
            async with asyncio.timeout(10):
                async for message in subscriber.messages:
                    summaries.append(json.loads(message.payload))
                    if len(summaries) == 2:
                        break
            stop.set()

    first, second = summaries
    assert [first["seq"], second["seq"]] == [1, 2]
    # The agent started mid-interval at 08:00:00 exactly, so the first interval is whole.
    start = clock.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    end = start + timedelta(seconds=60)
    assert first["interval_start"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    expected = _float32(meter.import_energy_kwh(end.timestamp())) - _float32(
        meter.import_energy_kwh(start.timestamp())
    )
    assert first["energy_import_kwh"] == expected
    assert first["energy_import_kwh"] > 0
    assert first["good_ratio"] == 1.0
    assert first["samples"] == 60 * 20  # 60 polls of the 20 catalogue points
    assert 100 < first["power_avg_kw"] < 260
    assert first["power_min_kw"] <= first["power_avg_kw"] <= first["power_max_kw"]
    assert first["latest"]["frequency_hz"]["quality"] == "good"
    # 08:00 UTC is 15:00 in Binh Duong on a Monday: EVN's normal band, 22-110 kV by default.
    assert (first["tariff_band"], first["price_vnd_per_kwh"]) == ("normal", 1833.0)
    assert first["cost_vnd"] == pytest.approx(expected * 1833.0)
    assert first["co2_kg"] == pytest.approx(expected * 0.6592)
    # The 15-minute billing window opened at 08:00: its demand so far, in kW.
    assert first["billing_window_start"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert first["billing_window_demand_kw"] == pytest.approx(expected * 60)
    both = second["energy_import_kwh"] + expected
    assert second["billing_window_demand_kw"] == pytest.approx(both * 30)
