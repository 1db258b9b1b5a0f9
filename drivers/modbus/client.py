"""The one place the Modbus driver touches pymodbus.

pymodbus renames its API between minor versions (`slave=` became `device_id=` in 3.10);
keeping it behind these few calls means such a change touches one file.

Errors are sorted by what the caller can do about them:
- `NoAnswer`: this unit did not answer in time (or answered garbage); the line is fine.
- `ModbusExceptionReply`: the unit answered with an exception code; it is alive.
- `DeviceUnavailable`: the connection is gone; every unit on it is unreachable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from drivers.base import DeviceUnavailable
from edge_agent.clock import Clock

from .config import ModbusLine
from .planner import Table

__all__ = ["EXCEPTION_NAMES", "Connection", "ModbusExceptionReply", "NoAnswer"]

# pymodbus logs every timeout and reconnect at ERROR without saying which device; the driver
# logs them itself, with the device, unit and address.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

# pymodbus's own timeout is only a backstop: the agent's clock times every request.
_LIBRARY_TIMEOUT_S = 60.0


class ModbusExceptionReply(Exception):
    """The unit answered with a Modbus exception code: it is alive, the request was refused."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"exception {code:02d} ({EXCEPTION_NAMES.get(code, 'unknown')})")


class NoAnswer(Exception):
    """The unit did not answer within the timeout, or its answer could not be decoded."""


class Connection:
    """One connection of a line; the caller makes sure one request is in flight at a time."""

    def __init__(self, line: ModbusLine, clock: Clock) -> None:
        self._line = line
        self._clock = clock
        self.address = (
            line.serial_port if line.transport == "serial" else f"{line.host}:{line.port or 502}"
        )
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        line = self._line
        # No pymodbus retries or reconnects: the line decides, on the agent's clock.
        common: dict[str, Any] = {
            "retries": 0,
            "reconnect_delay": 0,
            "timeout": _LIBRARY_TIMEOUT_S,
            "name": self.address,
        }
        if line.transport == "serial":
            assert line.serial_port is not None
            return AsyncModbusSerialClient(
                line.serial_port,
                framer=FramerType.RTU,
                baudrate=line.baudrate,
                bytesize=line.bytesize,
                parity=line.parity,
                stopbits=line.stopbits,
                **common,
            )
        assert line.host is not None
        framer = FramerType.SOCKET if line.transport == "tcp" else FramerType.RTU
        return AsyncModbusTcpClient(line.host, port=line.port or 502, framer=framer, **common)

    async def open(self) -> None:
        client = self._new_client()
        try:
            connected = await self._clock.wait_for(client.connect(), self._line.timeout_s * 2)
        except (TimeoutError, OSError, ModbusException) as exc:
            client.close()
            raise DeviceUnavailable(f"cannot connect to {self.address}: {exc}") from None
        if not connected:
            client.close()
            raise DeviceUnavailable(f"cannot connect to {self.address}")
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def read(self, table: Table, start: int, count: int, unit: int) -> list[int]:
        """Registers (or bits as 0/1) from `start`."""
        client = self._connected()
        calls = {
            Table.COIL: client.read_coils,
            Table.DISCRETE_INPUT: client.read_discrete_inputs,
            Table.HOLDING: client.read_holding_registers,
            Table.INPUT: client.read_input_registers,
        }
        call = calls[table]
        reply = await self._execute(lambda: call(start, count=count, device_id=unit))
        if table.is_bits:
            bits = [int(b) for b in reply.bits[:count]]
            if len(bits) != count:
                raise NoAnswer(f"asked {count} bits at {start}, got {len(bits)}")
            return bits
        registers = list(reply.registers)
        if len(registers) != count:
            raise NoAnswer(f"asked {count} registers at {start}, got {len(registers)}")
        return registers

    async def write(self, function_code: int, address: int, words: list[int], unit: int) -> None:
        client = self._connected()
        bits = [bool(w) for w in words]
        requests: dict[int, Callable[[], Awaitable[ModbusPDU]]] = {
            5: lambda: client.write_coil(address, bits[0], device_id=unit),
            15: lambda: client.write_coils(address, bits, device_id=unit),
            6: lambda: client.write_register(address, words[0], device_id=unit),
            16: lambda: client.write_registers(address, words, device_id=unit),
        }
        await self._execute(requests[function_code])

    def _connected(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is None or not self._client.connected:
            raise DeviceUnavailable(f"{self.address}: not connected")
        return self._client

    async def _execute(self, request: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """Send and wait; pymodbus raises "not connected" when the request is made, so the
        request is made here, inside the handling."""
        try:
            reply = await self._clock.wait_for(request(), self._line.timeout_s)
        except TimeoutError:
            raise NoAnswer(f"no answer within {self._line.timeout_s:g} s") from None
        except ConnectionException as exc:
            self.close()
            raise DeviceUnavailable(f"{self.address}: connection lost: {exc}") from None
        except ModbusIOException as exc:
            raise NoAnswer(f"no valid answer: {exc}") from None
        except (ModbusException, OSError) as exc:
            self.close()
            raise DeviceUnavailable(f"{self.address}: {type(exc).__name__}: {exc}") from None
        if reply.isError():
            raise ModbusExceptionReply(int(getattr(reply, "exception_code", 0)))
        return reply
