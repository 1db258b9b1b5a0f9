"""Northbound: durable summaries per second through the outbox into Mosquitto, and the
replay rate of a backlog after an outage; the in-memory outbox is the baseline, same run.

    .venv/bin/python bench/northbound.py --messages 2000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiomqtt

from edge_agent.clock import SystemClock
from edge_agent.config.schema import BrokerConfig, SiteInfo
from edge_agent.northbound.mqtt import MqttPublisher
from edge_agent.northbound.outbox import MemoryOutbox, Outbox
from edge_agent.northbound.sqlite_outbox import SqliteOutbox
from simulators.broker import MosquittoBroker
from simulators.ports import free_port

PAYLOAD = b'{"schema":"edge-agent/device-summary/1","seq":0,' + b'"x":"' + b"0" * 900 + b'"}'
TOPIC = "energy/v1/bench/site/devices/meter/summary"


async def run(outbox: Outbox, port: int, count: int, *, backlog: bool) -> tuple[float, float]:
    """(put rate, delivered rate): summaries/s into the outbox, and to the subscriber."""
    broker_config = BrokerConfig(host="127.0.0.1", port=port)
    publisher = MqttPublisher(
        broker_config, SiteInfo(name="site", park="bench"), outbox, SystemClock()
    )
    async with aiomqtt.Client("127.0.0.1", port, max_queued_incoming_messages=0) as sub:
        await sub.subscribe(TOPIC, qos=1)
        received = 0

        async def count_in() -> None:
            nonlocal received
            async for _ in sub.messages:
                received += 1
                if received == count:
                    return

        async with asyncio.TaskGroup() as group:
            counter = group.create_task(count_in())
            if not backlog:
                task = group.create_task(publisher.run())
            start = time.perf_counter()
            for _ in range(count):
                await outbox.put(TOPIC, PAYLOAD)
            put_s = time.perf_counter() - start
            if backlog:  # the broker "comes back": the publisher finds them all waiting
                start = time.perf_counter()
                task = group.create_task(publisher.run())
            await counter
            delivered_s = time.perf_counter() - start
            publisher.stop()
            await task
    return count / put_s, count / delivered_s


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    port = free_port()
    rows = []
    async with MosquittoBroker(port):
        with tempfile.TemporaryDirectory() as tmp:
            for label, make in (
                ("memory outbox (baseline, not durable)", lambda n: MemoryOutbox()),
                ("SQLite outbox, fsync normal", lambda n: SqliteOutbox(Path(tmp) / f"{n}.db")),
                (
                    "SQLite outbox, fsync full",
                    lambda n: SqliteOutbox(Path(tmp) / f"{n}.db", fsync="full"),
                ),
            ):
                live = await run(make(f"{label}-live"), port, args.messages, backlog=False)
                replay = await run(make(f"{label}-replay"), port, args.messages, backlog=True)
                rows.append((label, live, replay))
    print(
        f"\n{args.messages} summaries of {len(PAYLOAD)} bytes, QoS 1, into Mosquitto on "
        "loopback (each acknowledged before it leaves the outbox)"
    )
    print(f"{'outbox':<40} {'put/s':>9} {'live end-to-end/s':>18} {'replay/s':>10}")
    for label, (put, live), (_, replay) in rows:
        print(f"{label:<40} {put:>9,.0f} {live:>18,.0f} {replay:>10,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
