"""The Modbus simulator answers as a real SDM630 (and a real gateway) does, byte for byte:
what a driver is tested against must not be kinder or stranger than the field."""

from __future__ import annotations

import asyncio
import struct

import pytest

from edge_agent.config.loader import load_modbus_model
from simulators.modbus_server import ModbusSimulator, SimulatedUnit


def _unit(seen: list[tuple[str, float | bool]] | None = None) -> SimulatedUnit:
    points = load_modbus_model("eastron-sdm630").points
    return SimulatedUnit(
        1,
        points,
        lambda: {"voltage_l1_v": 230.0},
        on_write=None if seen is None else (lambda n, v: seen.append((n, v))),
        strict_map=True,
    )


async def _ask(port: int, pdu: bytes, *, unit: int = 1, tid: int = 7) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
    await writer.drain()
    header = await reader.readexactly(6)
    body = await reader.readexactly(int.from_bytes(header[4:6], "big"))
    writer.close()
    await writer.wait_closed()
    return header + body


def _exception(tid: int, unit: int, function: int, code: int) -> bytes:
    return struct.pack(">HHHBBB", tid, 0, 3, unit, function | 0x80, code)


@pytest.mark.parametrize(
    ("case", "pdu", "function"),
    [
        ("FC04 quantity 126", bytes([4, 0, 0, 0, 126]), 4),
        ("FC04 quantity 0", bytes([4, 0, 0, 0, 0]), 4),
        ("FC03 quantity 200", bytes([3, 0, 0, 0, 200]), 3),
        ("FC01 quantity 2001", bytes([1, 0, 0, 0x07, 0xD1]), 1),
        ("FC05 value 0x1234", bytes([5, 0, 0, 0x12, 0x34]), 5),
    ],
)
async def test_a_malformed_request_gets_exception_03_and_changes_nothing(
    case: str, pdu: bytes, function: int
) -> None:
    seen: list[tuple[str, float | bool]] = []
    async with ModbusSimulator([_unit(seen)]) as sim:
        answer = await _ask(sim.port, pdu)
        assert answer == _exception(7, 1, function, 3), case
        # The next request is answered as usual: nothing of the bad one lingers.
        good = await _ask(sim.port, bytes([4, 0, 0, 0, 2]), tid=8)
    assert good == struct.pack(">HHHBBB", 8, 0, 7, 1, 4, 4) + struct.pack(">f", 230.0)
    assert seen == []


async def test_a_register_the_map_does_not_have_is_exception_02() -> None:
    async with ModbusSimulator([_unit()]) as sim:
        holding = await _ask(sim.port, bytes([3, 0, 0, 0, 1]))
        coil = await _ask(sim.port, bytes([1, 0, 0, 0, 1]))
    assert holding == _exception(7, 1, 3, 2)
    assert coil == _exception(7, 1, 1, 2)


async def test_another_unit_id_gets_no_answer_from_a_device_and_0x0b_from_a_gateway() -> None:
    async with ModbusSimulator([_unit()]) as device:
        reader, writer = await asyncio.open_connection("127.0.0.1", device.port)
        writer.write(struct.pack(">HHHB", 9, 0, 6, 5) + bytes([4, 0, 0, 0, 2]))  # unit 5
        await writer.drain()
        await device.requested(1)
        writer.write(struct.pack(">HHHB", 10, 0, 6, 1) + bytes([4, 0, 0, 0, 2]))  # unit 1
        await writer.drain()
        header = await reader.readexactly(6)
        await reader.readexactly(int.from_bytes(header[4:6], "big"))
        assert header[:2] == (10).to_bytes(2, "big")  # the first answer is unit 1's
        assert device.answers == 1
        writer.close()
        await writer.wait_closed()
    async with ModbusSimulator([_unit()], gateway=True) as gateway:
        answer = await _ask(gateway.port, bytes([4, 0, 0, 0, 2]), unit=5)
    assert answer == _exception(7, 5, 4, 0x0B)
