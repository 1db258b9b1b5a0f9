"""No summary lost at a stop, and honest figures across gaps, on the real stacks: a simulated
SDM630 behind a Modbus server, the agent, Mosquitto and a subscriber, on simulated time.

The agent is stopped 0.5 s after a boundary, while the interval that has just ended waits for
its settle time, either gracefully or by abandoning it as a SIGKILL would (its tasks
cancelled, nothing more stored; `test_northbound.py` kills a real process), then started
again on the same SQLite outbox. The subscriber sees every interval of every device, in one
unbroken sequence; the ones no process could measure are null with their reason.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_modbus_model, load_site
from edge_agent.northbound.sqlite_outbox import SqliteOutbox
from edge_agent.summariser import NOT_RUNNING
from simulators.broker import MosquittoBroker
from simulators.faults import Fault
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator, SimulatedUnit
from tests.conftest import START

SUMMARIES = "energy/v1/test-park/press-shop/devices/+/summary"
DEVICES = {"main-meter": 0.0, "sub-meter": 0.5}
"""Each device and the phase of its polls: the line spreads its devices over the second, so
the sub-meter's boundary reading is the one 0.5 s after the boundary."""


@pytest.fixture
async def meters(meter: MeterModel) -> AsyncIterator[ModbusSimulator]:
    """Two units behind one server, both reading the same meter model."""
    points = load_modbus_model("eastron-sdm630").points
    units = [SimulatedUnit(unit, points, meter.values) for unit in (1, 2)]
    async with ModbusSimulator(units) as server:
        yield server


def write_site(tmp_path: Path, modbus_port: int, mqtt_port: int) -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(f"""
site: {{name: press-shop, park: test-park}}
broker: {{host: 127.0.0.1, port: {mqtt_port}}}
summary: {{interval_s: 10, settle_s: 2}}
outbox: {{path: {tmp_path / "state" / "outbox.sqlite"}}}
devices:
  - {{name: main-meter, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1,
     port: {modbus_port}, unit: 1, degraded_retry_max_s: 2}}
  - {{name: sub-meter, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1,
     port: {modbus_port}, unit: 2, degraded_retry_max_s: 2}}
""")
    return site


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def register(meter: MeterModel, moment: datetime) -> float:
    """What the agent reads of the import register at `moment`: its float32."""
    value = meter.import_energy_kwh(moment.timestamp())
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


async def receive_seqs(client: aiomqtt.Client, count: int) -> list[dict[str, Any]]:
    """Summaries until `count` different seqs have come (a resend after a kill repeats a
    seq, which a subscriber drops), in seq order."""
    by_seq: dict[int, dict[str, Any]] = {}
    async with asyncio.timeout(30):
        async for message in client.messages:
            summary = json.loads(bytes(message.payload))
            by_seq.setdefault(summary["seq"], summary)
            if len(by_seq) == count:
                break
    return [by_seq[seq] for seq in sorted(by_seq)]


async def run_until(agent: Agent, clock: SimClock, moment: datetime, *, graceful: bool) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    await agent.started.wait()
    await clock.advance_to(moment)
    if graceful:
        stop.set()
        await running
    else:  # abandoned: no stop path runs, nothing more is summarised or stored
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert isinstance(agent.outbox, SqliteOutbox)  # the site file names its path
    agent.outbox.close()


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful stop", "killed"])
async def test_a_stop_in_the_settle_time_and_a_restart_leave_no_interval_unsummarised(
    tmp_path: Path,
    clock: SimClock,
    meter: MeterModel,
    meters: ModbusSimulator,
    broker: MosquittoBroker,
    *,
    graceful: bool,
) -> None:
    site = write_site(tmp_path, meters.port, broker.port)
    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
        await subscriber.subscribe(SUMMARIES, qos=1)
        # Stopped at 08:00:30.5: the 08:00:20-30 interval has ended, in its settle time.
        await run_until(Agent(load_site(site), clock, seed=1), clock, at(30.5), graceful=graceful)
        await clock.advance_to(at(65.5))  # not running for 35 s; started again 5.5 s after
        await run_until(Agent(load_site(site), clock, seed=1), clock, at(95), graceful=True)
        summaries = await receive_seqs(subscriber, 9 * len(DEVICES))

    assert [s["seq"] for s in summaries] == list(range(1, 9 * len(DEVICES) + 1))
    missed = {40, 50, 60} | ({30} if not graceful else set())  # by interval end, in s
    for device, phase in DEVICES.items():
        mine = [s for s in summaries if s["device"] == device]
        assert [s["interval_start"] for s in mine] == [iso(at(t)) for t in range(0, 90, 10)]
        for s in mine:
            end = round((datetime.fromisoformat(s["interval_end"]) - START).total_seconds())
            if end in missed:
                assert (s["energy_import_kwh"], s["reason"], s["samples"]) == (None, NOT_RUNNING, 0)
            elif end == 70:
                assert s["energy_import_kwh"] is None
                assert (
                    s["reason"] == "partial interval: the agent started at 2026-03-02T08:01:05.500Z"
                )
            else:
                expected = register(meter, at(end + phase)) - register(meter, at(end - 10 + phase))
                assert s["energy_import_kwh"] == pytest.approx(expected), end
                assert s["reason"] is None
        # What no process measured is the gap's, from the last boundary read before the stop
        # to the first read after the start.
        [partial] = [s for s in mine if s["interval_end"] == iso(at(70))]
        last_read = 30 if graceful else 20
        assert (partial["gap_start"], partial["gap_end"]) == (iso(at(last_read)), iso(at(70)))
        assert partial["gap_energy_import_kwh"] == pytest.approx(
            register(meter, at(70 + phase)) - register(meter, at(last_read + phase))
        )
    # The graceful stop summarised 08:00:20-30 itself, with the boundary poll at 08:00:30.
    closing = summaries[2 * len(DEVICES)]
    assert closing["interval_end"] == iso(at(30))
    assert (closing["energy_import_kwh"] is not None) is graceful


async def test_a_meter_outage_is_null_and_its_energy_is_the_gaps(
    tmp_path: Path,
    clock: SimClock,
    meter: MeterModel,
    meters: ModbusSimulator,
    broker: MosquittoBroker,
) -> None:
    """The main meter answers only errors from 08:00:25 to 08:00:47: the intervals it could
    not bound are null with a reason, never 0.0, and the register's advance over the outage
    is reported once, as the gap's, in the 08:00:40-50 summary where readings come back."""
    site = write_site(tmp_path, meters.port, broker.port)
    agent = Agent(load_site(site), clock, seed=1)
    topic = SUMMARIES.replace("+", "main-meter")
    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
        await subscriber.subscribe(topic, qos=1)
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run(stop))
            await agent.started.wait()
            await clock.advance_to(at(24.5))
            meters.unit(1).fault = Fault.exception(4)
            await clock.advance_to(at(46.5))
            meters.unit(1).fault = None
            await clock.advance_to(at(63))
            stop.set()
        summaries = await receive_seqs(subscriber, 6)

    energy = [s["energy_import_kwh"] for s in summaries]
    step = [register(meter, at(t + 10)) - register(meter, at(t)) for t in range(0, 60, 10)]
    assert energy == [
        pytest.approx(step[0]),
        pytest.approx(step[1]),
        None,
        None,
        None,
        pytest.approx(step[5]),
    ]
    assert [s["reason"] for s in summaries[2:5]] == [
        "no good reading of the import register at the end boundary",
        "no good reading of the import register at either boundary",
        "no good reading of the import register at the start boundary",
    ]
    assert [s["gap_start"] for s in summaries] == [None] * 4 + [iso(at(20)), None]
    gap = summaries[4]
    assert gap["gap_end"] == iso(at(50))
    assert gap["gap_energy_import_kwh"] == pytest.approx(
        register(meter, at(50)) - register(meter, at(20))
    )
    assert gap["good_ratio"] < 1  # the interval where the meter came back
