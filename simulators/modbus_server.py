"""A Modbus TCP server on loopback that serves catalogue maps with live values.

Each unit behind the server is a device model from `configs/devices/` plus a function that
gives the point values (in the map's engineering units) at the current simulated time. On
every request the registers of that table are encoded from the values, through the same
codec and byte order the agent decodes with, so what the agent reads is exactly what the
model computed at that instant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from drivers.modbus.codec import DataType, encode, to_raw
from drivers.modbus.config import ModbusPoint
from drivers.modbus.planner import Table

__all__ = ["ModbusSimulator", "SimulatedUnit"]

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_TABLE_OF_FUNCTION = {
    1: Table.COIL,
    5: Table.COIL,
    15: Table.COIL,
    2: Table.DISCRETE_INPUT,
    3: Table.HOLDING,
    6: Table.HOLDING,
    16: Table.HOLDING,
    4: Table.INPUT,
}
_TABLE_INDEX = {Table.COIL: 0, Table.DISCRETE_INPUT: 1, Table.HOLDING: 2, Table.INPUT: 3}

Values = Callable[[], Mapping[str, float | bool]]


@dataclass
class SimulatedUnit:
    unit_id: int
    points: Mapping[str, ModbusPoint]
    values: Values
    """Engineering values by point name at the current time; missing points read as 0."""


class ModbusSimulator:
    """`async with ModbusSimulator([...]) as sim:` serves on `sim.port` until the block ends."""

    def __init__(
        self, units: list[SimulatedUnit], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._units = {u.unit_id: u for u in units}
        self._host, self._port = host, port
        self._server: ModbusTcpServer | None = None
        self.requests = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        assert self._server.transport is not None
        sockets = self._server.transport.sockets  # type: ignore[attr-defined]
        return int(sockets[0].getsockname()[1])

    async def __aenter__(self) -> Self:
        devices = [self._device(unit) for unit in self._units.values()]
        self._server = ModbusTcpServer(devices, address=(self._host, self._port))
        await self._server.serve_forever(background=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    def _device(self, unit: SimulatedUnit) -> SimDevice:
        sizes = dict.fromkeys(Table, 1)
        for point in unit.points.values():
            width = 1 if point.table.is_bits else point.type.registers
            sizes[point.table] = max(sizes[point.table], point.address + width)
        # Coils and discrete inputs are packed 16 to a register, bit 0 first.
        blocks = tuple(
            [
                SimData(0, count=-(-sizes[t] // 16), values=False, datatype=SimType.BITS)
                if t.is_bits
                else SimData(0, count=sizes[t], values=0, datatype=SimType.REGISTERS)
            ]
            for t in (Table.COIL, Table.DISCRETE_INPUT, Table.HOLDING, Table.INPUT)
        )

        async def action(  # noqa: PLR0917 - pymodbus's SimAction signature
            function_code: int,
            start: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            self.requests += 1
            table = _TABLE_OF_FUNCTION.get(function_code)
            if table is None:
                return ExcCodes.ILLEGAL_FUNCTION
            if set_values is None:
                self._refresh(unit, table, start, registers)
            return None

        return SimDevice(unit.unit_id, simdata=blocks, action=action)  # type: ignore[arg-type]

    @staticmethod
    def _refresh(unit: SimulatedUnit, table: Table, start: int, registers: list[int]) -> None:
        values = unit.values()
        for name, point in unit.points.items():
            if point.table is not table:
                continue
            value = values.get(name, 0)
            if point.table.is_bits:
                index, mask = point.address // 16 - start, 1 << (point.address % 16)
                registers[index] = (
                    (registers[index] | mask) if value else (registers[index] & ~mask)
                )
                continue
            raw = to_raw(value, point.type, point.scale, point.offset)
            if point.type is not DataType.BOOL and not point.type.is_float:
                low, high = point.type.raw_range()
                raw = min(max(raw, low), high)
            for i, word in enumerate(encode(raw, point.type, point.byte_order)):
                registers[point.address - start + i] = word
