"""`edge-agent probe` shows a known value in the type and byte order it really has."""

from __future__ import annotations

import re

from drivers.modbus.codec import ByteOrder, DataType
from drivers.modbus.config import ModbusLine, ModbusPoint
from drivers.modbus.planner import Table
from drivers.modbus.probe import format_window, probe
from simulators.modbus_server import ModbusSimulator, SimulatedUnit


async def test_probe_finds_a_word_swapped_float() -> None:
    points = {"volts": ModbusPoint(address=100, type=DataType.FLOAT32, byte_order=ByteOrder.CDAB)}
    async with ModbusSimulator([SimulatedUnit(4, points, lambda: {"volts": 230.5})]) as server:
        line = ModbusLine(name="probe", transport="tcp", host="127.0.0.1", port=server.port)
        words = await probe(line, 4, Table.HOLDING, 100, 2)
    text = format_window(words, 100, Table.HOLDING)
    starred = re.findall(r"^\s+100\s+(\w{4})\s+(\S+)\*", text, re.MULTILINE)
    assert ("CDAB", "230.5") in starred
    assert not any(order == "ABCD" and value == "230.5" for order, value in starred)
