"""The agent's CPU while polling a meter every second, beside a bare pymodbus loop.

Starts, as separate processes: the SDM630 simulator, Mosquitto on a free port, and then in
turn (1) `edge-agent run` on a site with one SDM630 polled every second, publishing to the
broker, and (2) a bare pymodbus client that reads the same register windows every second
and nothing else: the library's floor for the same Modbus work. CPU is read from
/proc/<pid>/stat over the measuring window, after a warm-up.

    .venv/bin/python bench/agent_cpu.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.modbus.driver import plan_groups
from edge_agent.config.loader import load_site
from simulators.broker import MosquittoBroker
from simulators.ports import free_port

TICKS = os.sysconf("SC_CLK_TCK")

BASELINE = """
import asyncio, sys, time
from pymodbus.client import AsyncModbusTcpClient
port, windows = int(sys.argv[1]), eval(sys.argv[2])
async def main():
    client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
    await client.connect()
    loop = asyncio.get_running_loop()
    tick = loop.time()
    while True:
        for start, count in windows:
            await client.read_input_registers(start, count=count, device_id=1)
        tick += 1.0
        await asyncio.sleep(max(0.0, tick - loop.time()))
asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(
    process: subprocess.Popen[bytes], warmup_s: float, seconds: float
) -> tuple[float, float]:
    time.sleep(warmup_s)
    if process.poll() is not None:
        raise SystemExit(f"{process.args} exited early with {process.returncode}")
    cpu0, t0 = cpu_seconds(process.pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(process.pid), time.monotonic()
    return 100 * (cpu1 - cpu0) / (t1 - t0), rss_mb(process.pid)


def stop(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM, and how long the process took to exit."""
    start = time.monotonic()
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return time.monotonic() - start


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()

    modbus_port, mqtt_port = free_port(), free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "simulators", "meter", "--port", str(modbus_port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert simulator.stdout is not None
    simulator.stdout.readline()  # "SDM630 simulator: Modbus TCP on ...": it is listening
    async with MosquittoBroker(mqtt_port):
        with tempfile.TemporaryDirectory() as tmp:
            site = Path(tmp) / "site.yaml"
            site.write_text(f"""
site: {{name: bench, park: bench-park}}
broker: {{host: 127.0.0.1, port: {mqtt_port}}}
summary: {{interval_s: 10}}
devices:
  - {{name: meter, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1,
     port: {modbus_port}, poll_interval_s: 1}}
""")
            config = load_site(site)
            [(group, requests)] = plan_groups(config.devices[0])
            windows = [(r.start, r.count) for r in requests]

            agent = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "--log-level", "WARNING", "run", str(site)],
                cwd=ROOT,
            )
            agent_cpu, agent_rss = await asyncio.to_thread(
                measure, agent, args.warmup, args.seconds
            )
            agent_stop_s = stop(agent)

            floor = subprocess.Popen(
                [sys.executable, "-c", BASELINE, str(modbus_port), repr(windows)], cwd=ROOT
            )
            floor_cpu, floor_rss = await asyncio.to_thread(
                measure, floor, args.warmup, args.seconds
            )
            stop(floor)
    stop(simulator)

    print(
        f"\nOne SDM630 ({len(group.points)} points), polled every 1 s for {args.seconds:g} s "
        f"after {args.warmup:g} s warm-up; {len(requests)} request(s) per cycle: "
        + ", ".join(f"FC04 {s}+{c}" for s, c in windows)
    )
    print(f"{'process':<46} {'CPU %':>7} {'RSS MB':>8}")
    print(f"{'edge-agent run (poll, summarise, publish)':<46} {agent_cpu:>7.2f} {agent_rss:>8.1f}")
    print(f"{'bare pymodbus loop, same reads (floor)':<46} {floor_cpu:>7.2f} {floor_rss:>8.1f}")
    print(f"edge-agent stopped {agent_stop_s:.2f} s after SIGTERM (exit code {agent.returncode})")


if __name__ == "__main__":
    asyncio.run(main())
