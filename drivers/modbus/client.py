"""The one place the Modbus driver touches pymodbus.

pymodbus renames its API between minor versions (`slave=` became `device_id=` in 3.10);
keeping it behind these few calls means such a change touches one file.
"""

from __future__ import annotations

import asyncio
import logging

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from drivers.base import DeviceUnavailable

from .planner import Table

__all__ = ["EXCEPTION_NAMES", "ModbusExceptionReply", "TcpConnection"]

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


class ModbusExceptionReply(Exception):
    """The device answered with a Modbus exception code: it is alive, the request was refused."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"exception {code:02d} ({EXCEPTION_NAMES.get(code, 'unknown')})")


class TcpConnection:
    """One Modbus TCP connection; one request in flight at a time (pymodbus's own rule)."""

    def __init__(self, host: str, port: int, *, timeout_s: float) -> None:
        self._address = f"{host}:{port}"
        # No pymodbus retries or reconnects: the driver decides, on the agent's clock.
        self._client = AsyncModbusTcpClient(
            host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0, name=self._address
        )
        self._timeout_s = timeout_s

    async def connect(self) -> None:
        try:
            connected = await asyncio.wait_for(self._client.connect(), self._timeout_s * 2)
        except (TimeoutError, OSError, ModbusException) as exc:
            raise DeviceUnavailable(f"cannot connect to {self._address}: {exc}") from None
        if not connected:
            raise DeviceUnavailable(f"cannot connect to {self._address}")

    def close(self) -> None:
        self._client.close()

    async def read(self, table: Table, start: int, count: int, unit: int) -> list[int]:
        """Registers (or bits as 0/1) from `start`; ModbusExceptionReply or DeviceUnavailable."""
        calls = {
            Table.COIL: self._client.read_coils,
            Table.DISCRETE_INPUT: self._client.read_discrete_inputs,
            Table.HOLDING: self._client.read_holding_registers,
            Table.INPUT: self._client.read_input_registers,
        }
        reply = await self._execute(calls[table](start, count=count, device_id=unit))
        if table.is_bits:
            return [int(b) for b in reply.bits[:count]]
        registers = list(reply.registers)
        if len(registers) != count:
            raise DeviceUnavailable(
                f"{self._address} unit {unit}: asked {count} registers at {start}, "
                f"got {len(registers)}"
            )
        return registers

    async def _execute(self, request: object) -> ModbusPDU:
        try:
            reply: ModbusPDU = await asyncio.wait_for(request, self._timeout_s * 2)  # type: ignore[arg-type]
        except (TimeoutError, ModbusException, OSError) as exc:
            # A late answer could be taken for the next request's: drop the connection.
            self.close()
            raise DeviceUnavailable(f"{self._address}: {type(exc).__name__}: {exc}") from None
        if reply.isError():
            raise ModbusExceptionReply(int(getattr(reply, "exception_code", 0)))
        return reply
