"""Modbus polling: points per second and CPU, merged plan against one request per point,
against a C client (libmodbus) as the floor; and a 200-device gateway polled every second.

The device side is a libmodbus server in C (bench/c/server.c), so the figures measure the
agent's side, not a Python server. Needs gcc and Debian's libmodbus-dev (installed here when
missing, as root).

    .venv/bin/python bench/modbus.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.modbus.config import ModbusPoint, ModbusTcpDevice, implicit_line
from drivers.modbus.driver import ModbusLineDriver
from edge_agent.agent import Agent
from edge_agent.clock import SystemClock
from edge_agent.config.schema import SiteConfig
from simulators.ports import free_port


def build_c(out: Path) -> tuple[Path, Path] | None:
    missing = (
        shutil.which("pkg-config") is None
        or subprocess.run(["pkg-config", "--exists", "libmodbus"], check=False).returncode
    )
    if missing and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "libmodbus-dev", "pkg-config"],
            check=False,
            capture_output=True,
        )
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "libmodbus"],
        check=False,
        capture_output=True,
        text=True,
    )
    if flags.returncode:
        return None
    binaries = []
    for name in ("server", "client"):
        binary = out / name
        subprocess.run(
            [
                "gcc",
                "-O2",
                "-o",
                str(binary),
                str(ROOT / "bench" / "c" / f"{name}.c"),
                *flags.stdout.split(),
            ],
            check=True,
        )
        binaries.append(binary)
    return binaries[0], binaries[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def devices(count: int, points: int, port: int, **extra: object) -> list[ModbusTcpDevice]:
    """`count` devices of `points` float32 input registers each, at addresses 0, 2, 4, ..."""
    point_map = {
        f"p{i}": ModbusPoint(address=2 * i, table="input", type="float32")  # type: ignore[arg-type]
        for i in range(points)
    }
    return [
        ModbusTcpDevice.model_validate(
            {
                "driver": "modbus-tcp",
                "name": f"d{n}",
                "host": "127.0.0.1",
                "port": port,
                "unit": 1 + n % 247,
                "points": point_map,
                **extra,
            }
        )
        for n in range(count)
    ]


async def read_flat_out(
    line_devices: list[ModbusTcpDevice], seconds: float
) -> tuple[float, float, int]:
    """Read every group of every device in a loop: (points/s, CPU %, requests per round)."""
    driver = ModbusLineDriver(implicit_line(line_devices[0]), line_devices, SystemClock())
    groups = driver.poll_groups()
    points = requests = 0
    async with driver:
        cpu0, t0 = time.process_time(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for group in groups:
                points += len(await driver.read(group, SystemClock().now()))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    requests = driver.requests_per_round()
    return points / wall, 100 * cpu / wall, requests


async def gateway(port: int, count: int, points: int, seconds: float) -> dict[str, float]:
    config = SiteConfig.model_validate(
        {
            "site": {"name": "bench", "park": "bench"},
            "devices": [d.model_dump() for d in devices(count, points, port, timeout_s=2.0)],
        }
    )
    agent = Agent(config, SystemClock(), publish=False)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        await asyncio.sleep(3.0)  # connect, and let the first rounds settle
        polls0 = sum(s.polls for p in agent.pollers for s in p.stats.devices.values())
        for p in agent.pollers:
            p.stats.lateness_s.clear()
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        polls = sum(s.polls for p in agent.pollers for s in p.stats.devices.values()) - polls0
        lateness = sorted(x for p in agent.pollers for x in p.stats.lateness_s)
        errors = sum(s.errors for p in agent.pollers for s in p.stats.devices.values())
        stop.set()
    return {
        "cpu": 100 * cpu / wall,
        "rss": rss_mb(),
        "polls_per_s": polls / wall,
        "expected_per_s": float(count),
        "errors": float(errors),
        "p50_ms": 1000 * statistics.median(lateness),
        "p99_ms": 1000 * lateness[int(0.99 * (len(lateness) - 1))],
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--points", type=int, default=50)
    args = parser.parse_args()
    rss_start = rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        binaries = build_c(Path(tmp))
        if binaries is None:
            raise SystemExit("gcc and libmodbus-dev are needed (apt-get install libmodbus-dev)")
        server_bin, client_bin = binaries
        port = free_port()
        server = subprocess.Popen([str(server_bin), str(port)], stdout=subprocess.PIPE)
        assert server.stdout is not None
        server.stdout.readline()  # "listening PORT"
        try:
            n, m = args.devices, args.points
            merged = await read_flat_out(devices(n, m, port), args.seconds)
            single = await read_flat_out(
                devices(n, m, port, max_registers_per_read=2), args.seconds
            )
            window = f"0:{2 * m}" if 2 * m <= 125 else "0:100"
            # Asynchronously: the driver's connection must finish closing, since the C
            # server serves one connection at a time.
            c = await asyncio.create_subprocess_exec(
                str(client_bin),
                str(port),
                str(args.seconds),
                "4",
                *[window] * n,
                stdout=subprocess.PIPE,
            )
            out, _ = await c.communicate()
            if c.returncode:
                raise SystemExit(f"the C client failed ({c.returncode})")
            requests, _registers, c_cpu, c_wall = (float(x) for x in out.split())
            c_points = requests / n * n * m / c_wall if 2 * m <= 125 else float("nan")
            c_cpu_pct = 100 * c_cpu / c_wall
            gw = await gateway(port, 200, 50, args.seconds)
        finally:
            server.kill()
            server.wait()

    print(
        f"\nModbus TCP on loopback against a libmodbus (C) server; {n} devices x {m} float32 "
        f"points; {args.seconds:g} s per row"
    )
    print(
        f"{'client':<44} {'req/round':>9} {'points/s':>10} {'CPU %':>7} {'CPU % per 1k pts/s':>19}"
    )
    rows = [
        ("edge-agent driver, merged plan", merged),
        ("edge-agent driver, one request per point", single),
    ]
    for label, (pps, cpu, reqs) in rows:
        print(f"{label:<44} {reqs:>9} {pps:>10,.0f} {cpu:>7.1f} {cpu / (pps / 1000):>19.2f}")
    print(
        f"{'libmodbus C client, same merged windows':<44} {n:>9} {c_points:>10,.0f} "
        f"{c_cpu_pct:>7.1f} {c_cpu_pct / (c_points / 1000):>19.2f}"
    )
    print(
        f"\nGateway case: 200 devices x 50 points, every 1 s, one connection, the whole agent "
        f"(no broker), {args.seconds:g} s"
    )
    print(
        f"  polls/s {gw['polls_per_s']:.1f} of {gw['expected_per_s']:.0f}, errors "
        f"{gw['errors']:.0f}; CPU {gw['cpu']:.1f} %; RSS {gw['rss']:.0f} MB "
        f"(process at start {rss_start:.0f} MB); poll lateness p50 {gw['p50_ms']:.1f} ms, "
        f"p99 {gw['p99_ms']:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
