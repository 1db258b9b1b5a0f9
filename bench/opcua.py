"""OPC UA: a 1,000-node batched read against one read per node, and a subscription of 1,000
monitored items changing every 100 ms (notifications per second and client CPU), in one run
against an asyncua server in a separate process.

    .venv/bin/python bench/opcua.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.opcua.config import OpcUaDevice
from drivers.opcua.session import Session
from edge_agent.clock import SystemClock
from simulators.ports import free_port

SERVER = """
import asyncio, sys
from asyncua import Server, ua
async def main(port, count, period):
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
    idx = await server.register_namespace("urn:bench")
    folder = await server.nodes.objects.add_object(ua.NodeId("Bench", idx), "Bench")
    nodes = [await folder.add_variable(ua.NodeId(f"Bench.V{i}", idx), f"V{i}", 0.0)
             for i in range(count)]
    async with server:
        print("ready", flush=True)
        tick = 0
        while True:
            tick += 1
            for i, node in enumerate(nodes):
                await node.write_value(float(tick + i))
            await asyncio.sleep(period)
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
"""


def device(port: int, count: int) -> OpcUaDevice:
    return OpcUaDevice.model_validate(
        {
            "driver": "opcua",
            "name": "bench",
            "endpoint": f"opc.tcp://127.0.0.1:{port}/bench/",
            "timeout_s": 30,
            "queue_size": 10,
            "points": {f"v{i}": {"node_id": f"ns=2;s=Bench.V{i}"} for i in range(count)},
        }
    )


async def timed(rounds: int, action: object) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


async def reads(session: Session, node_ids: list[str]) -> dict[str, list[float]]:
    async def batched() -> None:
        await session.read(node_ids)

    async def one_by_one() -> None:
        for node_id in node_ids:
            await session.read([node_id])

    return {"batched": await timed(20, batched), "single": await timed(3, one_by_one)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    port = free_port()
    # Batched and single reads against a server whose values do not change, then the
    # subscription against one whose values change every 100 ms.
    results: dict[str, list[float]] = {}
    for period in (3600.0, 0.1):
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port), str(args.nodes), str(period)],
            stdout=subprocess.PIPE,
        )
        assert server.stdout is not None
        await asyncio.to_thread(server.stdout.readline)
        config = device(port, args.nodes)
        node_ids = [p.node_id for p in config.points.values()]
        session = Session(config, SystemClock())
        await session.open()
        try:
            if period > 1:
                results.update(await reads(session, node_ids))
            else:
                await session.subscribe(node_ids, 0.1, 10, {})
                await asyncio.sleep(2.0)  # initial values, and the rate settles
                start_n, cpu0, t0 = session.notifications, time.process_time(), time.perf_counter()
                await asyncio.sleep(args.seconds)
                wall = time.perf_counter() - t0
                results["sub"] = [
                    (session.notifications - start_n) / wall,
                    100 * (time.process_time() - cpu0) / wall,
                ]
        finally:
            await session.close()
            server.kill()
            server.wait()

    batched, single = results["batched"], results["single"]
    print(
        f"\nOPC UA on loopback, {args.nodes} Double variables, asyncua server in a separate "
        "process, no security"
    )
    print(f"{'read':<34} {'median ms':>10} {'p95 ms':>8} {'values/s':>10}")
    for label, times in (
        ("one Read call for all nodes", batched),
        ("one Read call per node", single),
    ):
        median = statistics.median(times)
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        print(
            f"{label:<34} {1000 * median:>10.1f} {1000 * p95:>8.1f} {args.nodes / median:>10,.0f}"
        )
    print(f"batched is {statistics.median(single) / statistics.median(batched):.0f}x faster")
    rate, cpu = results["sub"]
    print(
        f"subscription, {args.nodes} items changing every 100 ms: {rate:,.0f} "
        f"notifications/s (expected {args.nodes * 10:,}), client CPU {cpu:.1f} %"
    )


if __name__ == "__main__":
    asyncio.run(main())
