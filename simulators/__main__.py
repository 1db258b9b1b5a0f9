"""`python -m simulators meter --port 5020`: serve a simulated SDM630 until Ctrl-C.

Point a site file's device at it (host 127.0.0.1, the port, unit 1) to run `edge-agent run`
against a meter without hardware.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from edge_agent.clock import SystemClock
from edge_agent.config.loader import load_modbus_model

from .meter import MeterModel
from .modbus_server import ModbusSimulator, SimulatedUnit


async def _serve_meter(host: str, port: int, unit: int, base_kw: float, seed: int) -> None:
    meter = MeterModel(SystemClock(), base_kw=base_kw, seed=seed)
    points = load_modbus_model("eastron-sdm630").points
    async with ModbusSimulator(
        [SimulatedUnit(unit, points, meter.values)], host=host, port=port
    ) as server:
        print(
            f"SDM630 simulator: Modbus TCP on {host}:{server.port}, unit {unit}, "
            f"about {base_kw:g} kW. Ctrl-C to stop.",
            flush=True,
        )
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m simulators", description="Simulated plant equipment."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    meter = commands.add_parser(
        "meter",
        help="an Eastron SDM630 energy meter over Modbus TCP",
        epilog="example: python -m simulators meter --port 5020",
    )
    meter.add_argument("--host", default="127.0.0.1")
    meter.add_argument("--port", type=int, default=5020)
    meter.add_argument("--unit", type=int, default=1)
    meter.add_argument("--base-kw", type=float, default=180.0)
    meter.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_meter(args.host, args.port, args.unit, args.base_kw, args.seed))


if __name__ == "__main__":
    main()
