"""A Modbus server (TCP on loopback, or RTU on a serial port) serving catalogue maps live.

Each unit behind the server is a device model from `edge_agent/catalogue/` plus a function that
gives the point values (in the map's engineering units) at the current simulated time. On
every request the registers of that table are encoded from the values, through the same
codec and byte order the agent decodes with, so what the agent reads is exactly what the
model computed at that instant. Several units behind one server are a gateway or an RS-485
line; each can be given a `Fault` while the server runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from drivers.modbus.codec import DataType, decode, encode, to_engineering, to_raw
from drivers.modbus.config import ModbusPoint
from drivers.modbus.planner import Table

from .faults import Fault

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
Written = Callable[[str, float | bool], None]


@dataclass
class SimulatedUnit:
    unit_id: int
    points: Mapping[str, ModbusPoint]
    values: Values
    """Engineering values by point name at the current time; missing points read as 0."""
    on_write: Written | None = None
    """Called with (point, engineering value) for each point a write request changes."""
    fault: Fault | None = None
    """Set and clear while the server runs; the next request sees it."""
    strict_map: bool = False
    """Answer exception 02 for any register no point covers, as many real devices do."""
    requests: int = 0


def _blocks(sizes: Mapping[Table, int]) -> tuple[list[SimData], ...]:
    """pymodbus's data blocks for tables of `sizes` addresses, in its table order. Coils and
    discrete inputs are packed 16 to a register, bit 0 first."""
    return tuple(
        [
            SimData(0, count=-(-sizes[t] // 16), values=False, datatype=SimType.BITS)
            if t.is_bits
            else SimData(0, count=sizes[t], values=0, datatype=SimType.REGISTERS)
        ]
        for t in (Table.COIL, Table.DISCRETE_INPUT, Table.HOLDING, Table.INPUT)
    )


class ModbusSimulator:
    """`async with ModbusSimulator([...]) as sim:` serves on `sim.port` until the block ends."""

    def __init__(
        self,
        units: list[SimulatedUnit],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        framing: str = "mbap",
        serial_port: str | None = None,
        baudrate: int = 9600,
        gateway: bool = False,
    ) -> None:
        """`gateway`: answer a request for a unit not behind it with exception 0x0B (gateway
        target failed to respond), as a Modbus gateway does; a device itself (the default)
        stays silent, as a real SDM630 does for another unit id."""
        self._units = {u.unit_id: u for u in units}
        self._gateway = gateway
        self._refuse_next: dict[int, bool] = {}
        """Unit -> its request now in hand is malformed: do not act on it."""
        self._refusals: dict[tuple[int, int], bytes] = {}
        """(transaction id, unit) -> the exception frame a malformed request gets instead."""
        self._host, self._port = host, port
        self._framing = framing
        self._serial_port, self._baudrate = serial_port, baudrate
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._stopping = asyncio.Event()
        self._answer_sent = asyncio.Event()
        self._request_seen = asyncio.Event()
        self.requests = 0
        self.answers = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        assert self._server.transport is not None
        sockets = self._server.transport.sockets  # type: ignore[attr-defined]
        return int(sockets[0].getsockname()[1])

    def unit(self, unit_id: int) -> SimulatedUnit:
        return self._units[unit_id]

    async def __aenter__(self) -> Self:
        devices = [self._device(unit) for unit in self._units.values()]
        if 0 not in self._units:
            # pymodbus hands a request for an unknown unit to unit 0 (and answers exception
            # 04 when there is none): unit 0 is where to be silent, or answer as a gateway.
            devices.append(self._nobody())
        self._stopping.clear()
        if self._serial_port is not None:
            self._server = ModbusSerialServer(
                devices,
                framer=FramerType.RTU,
                port=self._serial_port,
                baudrate=self._baudrate,
                trace_packet=self._trace,
            )
        else:
            framer = FramerType.SOCKET if self._framing == "mbap" else FramerType.RTU
            self._server = ModbusTcpServer(
                devices, address=(self._host, self._port), framer=framer, trace_packet=self._trace
            )
        await self._server.serve_forever(background=True)
        if self._serial_port is None:
            self._port = self.port  # a restart binds the same port again
        return self

    def connections(self) -> int:
        """Client connections open now."""
        return len(self._server.active_connections) if self._server is not None else 0

    def drop_connections(self) -> None:
        """Close every client connection, as a gateway does when it reboots."""
        if self._server is not None:
            for connection in list(self._server.active_connections.values()):
                connection.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._stopping.set()  # releases requests held by a no_answer fault
            self.drop_connections()
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    def _nobody(self) -> SimDevice:
        async def action(  # noqa: PLR0917 - pymodbus's SimAction signature
            function_code: int,
            start: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            self.requests += 1
            self._request_seen.set()
            return ExcCodes.GATEWAY_NO_RESPONSE  # a device's own silence is made in _trace

        every = dict.fromkeys(Table, 65536)  # every address: every request reaches the action
        return SimDevice(0, simdata=_blocks(every), action=action)  # type: ignore[arg-type]

    def _device(self, unit: SimulatedUnit) -> SimDevice:
        sizes = dict.fromkeys(Table, 1)
        for point in unit.points.values():
            width = 1 if point.table.is_bits else point.type.registers
            sizes[point.table] = max(sizes[point.table], point.address + width)
        blocks = _blocks(sizes)

        async def action(  # noqa: PLR0917 - pymodbus's SimAction signature
            function_code: int,
            start: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            self.requests += 1
            self._request_seen.set()
            unit.requests += 1
            if self._refuse_next.pop(unit.unit_id, False):
                return None  # malformed: refused as it goes out, and nothing is applied
            fault = unit.fault
            if fault is not None:
                if fault.kind == "no_answer":
                    await self._stopping.wait()
                    return ExcCodes.DEVICE_FAILURE
                if fault.kind == "slow":
                    await asyncio.sleep(fault.delay_s)
                if fault.kind == "exception":
                    return ExcCodes(fault.code)
            table = _TABLE_OF_FUNCTION.get(function_code)
            if table is None:
                return ExcCodes.ILLEGAL_FUNCTION
            if unit.strict_map and not self._mapped(unit, table, address, count):
                return ExcCodes.ILLEGAL_ADDRESS
            if set_values is None:
                self._refresh(unit, table, start, registers)
            else:
                self._apply_write(unit, table, address, set_values)
            return None

        return SimDevice(unit.unit_id, simdata=blocks, action=action)  # type: ignore[arg-type]

    async def requested(self, count: int) -> None:
        """Return once the server has taken `count` requests in all (answered or not)."""
        while self.requests < count:
            self._request_seen.clear()
            await self._request_seen.wait()

    async def answered(self, count: int) -> None:
        """Return once the server has sent `count` answers in all (late ones included)."""
        while self.answers < count:
            self._answer_sent.clear()
            await self._answer_sent.wait()

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """Count answers, answer malformed requests as a device does, and mangle the
        answers of units with a `corrupt` fault."""
        mbap = self._framing == "mbap" and self._serial_port is None
        if mbap and not sending:
            self._check_request(data)
        if sending and mbap and not self._gateway and len(data) >= 7 and data[6] not in self._units:
            return b""  # no device with that unit id: nobody answers
        if sending:
            self.answers += 1
            self._answer_sent.set()
            if mbap and len(data) >= 8:
                refusal = self._refusals.pop((int.from_bytes(data[0:2], "big"), data[6]), None)
                if refusal is not None:
                    return refusal
        if not sending or len(data) < 4:
            return data
        unit_id = data[6] if self._framing == "mbap" and self._serial_port is None else data[0]
        unit = self._units.get(unit_id)
        if unit is None or unit.fault is None or unit.fault.kind != "corrupt":
            return data
        mangled = bytearray(data)
        mangled[-2] ^= 0x5A  # a data byte on TCP; the CRC on RTU
        mangled[-1] ^= 0xA5
        if self._framing == "mbap" and self._serial_port is None:
            mangled[7] = 0x2B  # a function code the client did not ask for
        return bytes(mangled)

    def _check_request(self, data: bytes) -> None:
        """A request the Modbus spec says to refuse with exception 03 (illegal data value):
        a quantity outside the function's range, an FC05 value other than 0xFF00 or 0x0000.
        pymodbus answers the first with a malformed exception (function 0x80, code 01) and
        takes any FC05 value as on, echoing 0xFF00; a real device echoes nothing it did not
        take. The answer is replaced when it goes out (by transaction id and unit)."""
        if len(data) < 12:
            return
        transaction, unit, function = int.from_bytes(data[0:2], "big"), data[6], data[7]
        if unit not in self._units:
            return
        word = int.from_bytes(data[10:12], "big")
        limits = {1: 2000, 2: 2000, 3: 125, 4: 125, 15: 1968, 16: 123}
        bad = (function in limits and not 1 <= word <= limits[function]) or (
            function == 5 and word not in (0xFF00, 0x0000)
        )
        if bad:
            pdu = bytes([function | 0x80, int(ExcCodes.ILLEGAL_VALUE)])
            head = transaction.to_bytes(2, "big") + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big")
            self._refusals[(transaction, unit)] = head + bytes([unit]) + pdu
            # pymodbus refuses a bad quantity before any action; an FC05 it would apply.
            self._refuse_next[unit] = function == 5

    @staticmethod
    def _mapped(unit: SimulatedUnit, table: Table, address: int, count: int) -> bool:
        covered: set[int] = set()
        for point in unit.points.values():
            if point.table is table:
                width = 1 if table.is_bits else point.type.registers
                covered.update(range(point.address, point.address + width))
        return all(a in covered for a in range(address, address + count))

    @staticmethod
    def _apply_write(
        unit: SimulatedUnit, table: Table, address: int, set_values: list[int] | list[bool]
    ) -> None:
        """Tell the model what the write set; the registers are refreshed on the next read."""
        if unit.on_write is None:
            return
        written = range(address, address + len(set_values))
        for name, point in unit.points.items():
            if point.table is not table:
                continue
            if table.is_bits:
                if point.address in written:
                    unit.on_write(name, bool(set_values[point.address - address]))
                continue
            span = range(point.address, point.address + point.type.registers)
            if span.start in written and span[-1] in written:
                words = [int(set_values[a - address]) for a in span]
                raw = decode(words, point.type, point.byte_order)
                unit.on_write(name, to_engineering(raw, point.scale, point.offset))

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
            scale = point.scale
            if point.scale_factor is not None:  # SunSpec: raw * 10**sf * scale + offset
                scale *= 10.0 ** int(values.get(point.scale_factor, 0))
            raw = to_raw(value, point.type, scale, point.offset)
            if point.type is not DataType.BOOL and not point.type.is_float:
                low, high = point.type.raw_range()
                raw = min(max(raw, low), high)
            for i, word in enumerate(encode(raw, point.type, point.byte_order)):
                registers[point.address - start + i] = word
