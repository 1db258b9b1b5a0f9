"""Serve simulated equipment over the real protocols until Ctrl-C:

    python -m simulators meter --port 5020            an Eastron SDM630 over Modbus TCP
    python -m simulators opcua process-chiller        one machine of the catalogue over OPC UA

Point a site file's device at it (host 127.0.0.1 and the port, unit 1; or the endpoint the
OPC UA command prints, with the security policy and mode you pick) to run `edge-agent run`
against it without hardware.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from edge_agent.clock import SystemClock
from edge_agent.config.loader import load_modbus_model, load_opcua_model

from .machines import PHYSICS
from .meter import MeterModel
from .modbus_server import ModbusSimulator, SimulatedUnit
from .opcua_server import OpcUaSimulator, SimulatedMachine


async def _serve_meter(host: str, port: int, unit: int, base_kw: float, seed: int) -> None:
    meter = MeterModel(SystemClock(), base_kw=base_kw, seed=seed)
    points = load_modbus_model("eastron-sdm630").points
    # strict_map: a register the SDM630's map does not have is exception 02, as on the meter.
    async with ModbusSimulator(
        [SimulatedUnit(unit, points, meter.values, strict_map=True)], host=host, port=port
    ) as server:
        print(
            f"SDM630 simulator: Modbus TCP on {host}:{server.port}, unit {unit}, "
            f"about {base_kw:g} kW. Ctrl-C to stop.",
            flush=True,
        )
        await asyncio.Event().wait()


async def _serve_machine(model: str, port: int, pki: Path) -> None:
    machine = PHYSICS[model]()
    async with OpcUaSimulator(
        [SimulatedMachine(load_opcua_model(model), machine)],
        clock=SystemClock(),
        port=port,
        pki=pki,
    ) as server:
        print(
            f"{model} simulator: OPC UA on {server.url} (security None, and Basic256Sha256 "
            f"Sign or SignAndEncrypt with the certificate in {pki}). Ctrl-C to stop.",
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
    opcua = commands.add_parser(
        "opcua",
        help="one OPC UA machine of the catalogue, with its physics",
        epilog="example: python -m simulators opcua process-chiller --port 4841",
    )
    opcua.add_argument("model", choices=sorted(PHYSICS), help="the catalogue model")
    opcua.add_argument("--port", type=int, default=4841)
    opcua.add_argument(
        "--pki",
        type=Path,
        default=Path("state/sim-pki"),
        help="where the server's certificate goes (default state/sim-pki)",
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.command == "meter":
            asyncio.run(_serve_meter(args.host, args.port, args.unit, args.base_kw, args.seed))
        else:
            asyncio.run(_serve_machine(args.model, args.port, args.pki))


if __name__ == "__main__":
    main()
