"""Nothing is lost: a broker outage, and the agent killed with SIGKILL, with a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_site
from edge_agent.northbound.sqlite_outbox import SqliteOutbox
from edge_agent.summariser import NOT_RUNNING
from simulators.broker import MosquittoBroker
from simulators.modbus_server import ModbusSimulator
from tests.conftest import receive

TOPIC = "energy/v1/test-park/press-shop/devices/main-meter/summary"


def site_file(tmp_path: Path, modbus_port: int, mqtt_port: int, interval_s: int) -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(f"""
site: {{name: press-shop, park: test-park}}
broker: {{host: 127.0.0.1, port: {mqtt_port}, reconnect_initial_s: 1, reconnect_max_s: 4}}
summary: {{interval_s: {interval_s}, settle_s: 1}}
outbox: {{path: {tmp_path / "state" / "outbox.sqlite"}}}
devices:
  - {{name: main-meter, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1,
     port: {modbus_port}}}
""")
    return site


async def test_a_broker_outage_loses_nothing_and_keeps_the_order(
    tmp_path: Path, clock: SimClock, meter_server: ModbusSimulator, broker: MosquittoBroker
) -> None:
    agent = Agent(load_site(site_file(tmp_path, meter_server.port, broker.port, 10)), clock)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        await agent.started.wait()
        async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
            await subscriber.subscribe(TOPIC, qos=1)
            await clock.advance(25)
            before = await receive(subscriber, 2)

        await broker.stop()
        await clock.advance(60)  # six summaries, while the agent retries with backoff
        assert agent.outbox.depth() == 6
        assert not agent.publisher.stats.connected

        await broker.start()
        async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
            await subscriber.subscribe(TOPIC, qos=1)
            # The next retry connects and sends the backlog. The connection is real I/O, so
            # the clock moves a second at a time until it is up: a summary made after it is
            # live, whatever the machine's load (one made before it waited: historical).
            moved = 0
            while moved < 9 and not agent.publisher.ready.is_set():
                await clock.advance(1)
                moved += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await agent.publisher.ready.wait()
            assert agent.publisher.ready.is_set()
            await clock.advance(10 - moved)
            after = await receive(subscriber, 7)
        stop.set()

    seqs = [s["seq"] for s in before + after]
    assert seqs == list(range(1, 10))  # every one, in order, none twice
    assert [s["historical"] for s in after] == [True] * 6 + [False]
    starts = [s["interval_start"] for s in before + after]
    assert starts == sorted(starts)
    assert agent.outbox.depth() == 0


@pytest.mark.parametrize("seed", [3, 7, 10])  # the old 60 s cap: 13, 47, 41 s
async def test_a_broker_back_after_two_minutes_is_reached_within_ten_seconds(
    tmp_path: Path,
    clock: SimClock,
    meter_server: ModbusSimulator,
    broker: MosquittoBroker,
    seed: int,
) -> None:
    """The site's default backoff (reconnect_max_s 60 s) after a 2-minute outage: the agent
    tries again at least every 10 s, so it is connected within about 10 s of the broker's
    return (it took up to a minute). Simulated time moves a second at a time, so the agent's
    attempts come as they would in real time; the jitter is seeded."""
    site = tmp_path / "site.yaml"
    site.write_text(
        site_file(tmp_path, meter_server.port, broker.port, 10)
        .read_text()
        .replace(", reconnect_initial_s: 1, reconnect_max_s: 4", "")
    )
    agent = Agent(load_site(site), clock, seed=seed)

    async def seconds_until_connected() -> int:
        """Simulated seconds until the publisher is connected; each step gives the real
        connection a bounded real moment to come up (loopback: milliseconds)."""
        moved = 0
        while moved < 90 and not agent.publisher.ready.is_set():
            await clock.advance(1)
            moved += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await agent.publisher.ready.wait()
        assert agent.publisher.ready.is_set()
        return moved

    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        await agent.started.wait()
        await seconds_until_connected()
        await broker.stop()
        for _ in range(120):
            await clock.advance(1)
        assert agent.publisher.stats.failures >= 5  # it kept trying, backing off
        await broker.start()
        moved = await seconds_until_connected()
        stop.set()
    assert moved <= 11, f"connected {moved} s after the broker came back"


AGENT = """
import asyncio, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
from pathlib import Path
from edge_agent.agent import Agent
from edge_agent.clock import SystemClock
from edge_agent.config.loader import load_site
from edge_agent.summariser import NOT_RUNNING
async def main():
    agent = Agent(load_site(Path(sys.argv[1])), SystemClock())
    await agent.run(asyncio.Event())
asyncio.run(main())
"""


async def start_agent(site: Path) -> asyncio.subprocess.Process:
    """The agent in a process of its own, its log lines on the returned process's stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        AGENT,
        str(site),
        cwd=Path(__file__).parents[1],
        env={**os.environ, "PYTHONPATH": "."},
        stdout=asyncio.subprocess.PIPE,
    )


async def test_sigkill_loses_nothing_and_numbers_continue(
    tmp_path: Path, meter_server: ModbusSimulator, broker: MosquittoBroker
) -> None:
    """Real time and a real process: summaries every second pile up while the broker is
    down; the agent is killed; the next run sends them all, in order, and goes on. With
    `settle_s` as long as the interval, the kill always lands in an ended interval's settle
    time: that interval, and those while no agent ran, are summarised by the next run as
    `agent not running`, so the intervals and the numbers run on without a hole."""
    site = site_file(tmp_path, meter_server.port, broker.port, 1)
    await broker.stop()
    first = await start_agent(site)
    database = tmp_path / "state" / "outbox.sqlite"

    def stored() -> int:
        if not database.exists():
            return 0
        with sqlite3.connect(database) as db:
            return int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    assert first.stdout is not None
    async with asyncio.timeout(30):
        while b"summary #3 stored" not in await first.stdout.readline():
            pass
    first.send_signal(signal.SIGKILL)
    await first.wait()
    kept = stored()
    assert kept >= 3

    await broker.start()
    received: list[Any] = []
    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
        await subscriber.subscribe(TOPIC, qos=1)
        second = await start_agent(site)
        try:
            # Up to the first interval the second run measured whole.
            while len(received) <= kept or received[-1]["reason"] is not None:
                received += await receive(subscriber, 1)
        finally:
            second.terminate()
            await second.wait()
    seqs = [s["seq"] for s in received]
    assert seqs == list(range(1, len(received) + 1))
    starts = [datetime.fromisoformat(s["interval_start"]) for s in received]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(starts)] == [1.0] * (
        len(starts) - 1
    )
    assert all(s["historical"] for s in received[:kept])
    assert not received[-1]["historical"]
    *missed, partial, whole = received[kept:]
    assert missed, "the interval in its settle time at the kill has a summary"
    assert all((s["energy_import_kwh"], s["reason"]) == (None, NOT_RUNNING) for s in missed)
    assert partial["energy_import_kwh"] is None
    assert partial["reason"].startswith("partial interval: the agent started at ")
    # Known, not null (the meter runs on the fixture's simulated clock, which stands still
    # here: its register does not advance).
    assert partial["gap_start"] == received[kept - 1]["interval_end"]
    assert partial["gap_energy_import_kwh"] is not None
    assert whole["energy_import_kwh"] is not None


async def until_logged(process: asyncio.subprocess.Process, words: bytes) -> bytes:
    """The process's next log line holding `words` (its stdout)."""
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = await process.stdout.readline()
            assert line, f"the agent exited before logging {words!r}"
            if words in line:
                return line


async def test_a_demand_response_accepted_before_a_sigkill_is_in_force_after_it(
    tmp_path: Path, meter_server: ModbusSimulator, broker: MosquittoBroker
) -> None:
    """The park sends a request (retained, as a park does so that a gateway that was away
    gets it); the agent accepts it and is killed; the next run has it in force from its own
    store before any message comes, and the retained copy the broker hands over again is
    neither applied nor answered a second time."""
    site = site_file(tmp_path, meter_server.port, broker.port, 1)
    base = "energy/v1/test-park/press-shop"
    request = {
        "type": "demand_response",
        "id": "dr-kill",
        "site": "press-shop",
        "limit_kw": 300,
        "start": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "duration_s": 1800,
    }
    async with aiomqtt.Client("127.0.0.1", broker.port) as park:
        await park.subscribe(f"{base}/command-responses", qos=1)
        first = await start_agent(site)
        await until_logged(first, b"summary #1 stored")  # polling, and the broker is up
        await park.publish(
            f"{base}/commands/demand_response", json.dumps(request), qos=1, retain=True
        )
        [answer] = await receive(park, 1)
        assert (answer["id"], answer["status"]) == ("dr-kill", "accepted")
        first.send_signal(signal.SIGKILL)
        await first.wait()

        second = await start_agent(site)
        try:
            await until_logged(second, b"command dr-kill accepted at")  # restored, in force
            await until_logged(second, b"command dr-kill (retained) is in force already")
        finally:
            second.terminate()
            await second.wait()
        await park.publish(f"{base}/commands/demand_response", b"", qos=1, retain=True)


async def test_the_outbox_stamps_on_the_agents_clock(tmp_path: Path, clock: SimClock) -> None:
    """One clock: a message's `created` is simulated time in a simulated day, so its age
    and its historical mark are too."""
    site = site_file(tmp_path, 1, 1, 10)
    agent = Agent(load_site(site), clock, publish=False)
    outbox = agent.outbox
    assert isinstance(outbox, SqliteOutbox)
    try:
        await outbox.put("t", b"x")
        assert outbox.oldest_created() == clock.now().timestamp()
    finally:
        outbox.close()
