"""Configuration of a Modbus device and its points, as written in a site or catalogue file."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import (
    Field,
    NonNegativeFloat,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge_agent.config.base import DAY_S, Name, Seconds, StrictModel

from .codec import ByteOrder, DataType
from .planner import MAX_REGISTERS_PER_READ, Span, Table

__all__ = [
    "ModbusDevice",
    "ModbusDeviceBase",
    "ModbusLine",
    "ModbusLineDevice",
    "ModbusPoint",
    "ModbusTcpDevice",
    "PointRole",
    "implicit_line",
]

PointRole = Literal["active_power_kw", "import_energy_kwh", "export_energy_kwh", "power_factor"]
"""What the summariser and the optimiser use a point for; each role fixes the unit."""

_ROLE_UNITS = {
    "active_power_kw": "kW",
    "import_energy_kwh": "kWh",
    "export_energy_kwh": "kWh",
    "power_factor": None,
}


class ModbusPoint(StrictModel):
    """One value on a Modbus device. Engineering value = raw * scale + offset."""

    address: int = Field(ge=0, le=65535)
    """Zero-based protocol address (a manual's 30001 or 40001 is address 0)."""
    table: Table = Table.HOLDING
    """coil (FC1), discrete_input (FC2), holding (FC3) or input (FC4)."""
    type: DataType = DataType.UINT16
    byte_order: ByteOrder = ByteOrder.ABCD
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    role: PointRole | None = None
    poll_interval_s: Seconds | None = None
    """Defaults to the device's poll interval; must be a whole multiple of it."""
    scale_factor: Name | None = None
    """An int16 point holding a power-of-ten exponent (SunSpec's sunssf): the value is then
    (raw * 10**sf) * scale + offset, with sf read in the same poll."""
    deadband: NonNegativeFloat | None = None
    """Change reporting: a new value closer than this to the last reported one is not a change."""
    deadband_pct: NonNegativeFloat | None = None
    """The same, in percent of the last reported value."""
    writable: bool = False
    """Only a point declared writable is ever written."""
    min: float | None = None
    """Lowest value a write may set (engineering units); required for a writable number."""
    max: float | None = None
    write_function: Literal[5, 6, 15, 16] | None = None
    """Force a function code; by default 5 for a coil, 6 for one register, 16 for more."""
    verify_write: bool = False
    """Read the point back after writing and fail if it does not hold the value."""
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.table.is_bits and self.type is not DataType.BOOL:
            raise ValueError(f"a {self.table.value} holds one bit: its type must be bool")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.writable and self.table in (Table.INPUT, Table.DISCRETE_INPUT):
            raise ValueError(f"a {self.table.value} is read-only: it cannot be writable")
        if (
            self.writable
            and self.type is not DataType.BOOL
            and (self.min is None or self.max is None)
        ):
            raise ValueError("a writable number needs min and max: the range a write may set")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        if self.write_function in (5, 15) and not self.table.is_bits:
            raise ValueError(f"write_function {self.write_function} writes coils")
        if self.write_function in (6, 16) and self.table.is_bits:
            raise ValueError(f"write_function {self.write_function} writes registers")
        if self.write_function == 6 and self.type.registers != 1:
            raise ValueError("write_function 6 writes one register; this type needs 16")
        if self.role is not None and _ROLE_UNITS[self.role] not in (None, self.unit):
            raise ValueError(
                f"role {self.role} needs unit {_ROLE_UNITS[self.role]!r}, found {self.unit!r}; "
                "use scale to convert (e.g. W to kW: scale 0.001)"
            )
        return self

    def span(self, key: str) -> Span:
        width = 1 if self.table.is_bits else self.type.registers
        return Span(key, self.table, self.address, width)


class ModbusDeviceBase(StrictModel):
    """What every Modbus device has, whichever way it is reached."""

    name: Name
    model: str | None = None
    """A catalogue model (edge_agent/catalogue/<model>.yaml) whose points the device starts from."""
    unit: int = Field(default=1, ge=0, le=255)
    """The Modbus unit (slave) id; gateways and serial lines route by it."""
    poll_interval_s: Seconds = 1.0
    poll_phase_s: float | None = Field(default=None, ge=0, le=DAY_S)
    """Offset of this device's poll ticks in the interval; by default the devices of one line
    are spread evenly over it, so that they do not all ask at the same instant."""
    max_registers_per_read: int = Field(default=MAX_REGISTERS_PER_READ, ge=1, le=125)
    max_gap_registers: int = Field(default=0, ge=0, le=124)
    """Unused registers a read may span to merge two points; only for devices that allow it."""
    degrade_after: int = Field(default=3, ge=1)
    """Consecutive unanswered requests after which the unit is polled only rarely, with
    backoff, so that it stops costing the other units on its line their poll rate."""
    degraded_retry_max_s: Seconds = 60.0
    stale_after_s: Seconds | None = None
    """A value older than this is stale; defaults to three poll intervals of the point."""
    points: dict[Name, ModbusPoint] = Field(min_length=1)

    @field_validator("points")
    @classmethod
    def _intervals(
        cls, points: dict[str, ModbusPoint], info: ValidationInfo
    ) -> dict[str, ModbusPoint]:
        base = info.data.get("poll_interval_s")
        for name, point in points.items():
            interval = point.poll_interval_s
            if base is not None and interval is not None:
                ratio = interval / base
                if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
                    raise ValueError(
                        f"point {name}: poll_interval_s {interval:g} must be a whole multiple "
                        f"of the device's poll_interval_s {base:g}"
                    )
            sf = point.scale_factor
            if sf is not None and (sf not in points or points[sf].type is not DataType.INT16):
                raise ValueError(
                    f"point {name}: scale_factor {sf!r} must name an int16 point of this device"
                )
        return points


class ModbusTcpDevice(ModbusDeviceBase):
    """A device reached over TCP, directly or through a gateway. Devices at the same host and
    port share one connection and one request queue, as a gateway needs."""

    driver: Literal["modbus-tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    framing: Literal["mbap", "rtu"] = "mbap"
    """`rtu` for serial-to-Ethernet converters that pass RTU frames through unchanged."""
    timeout_s: Seconds = 1.0
    pause_s: float = Field(default=0.0, ge=0, le=10)
    """Silence between two requests on the connection; some gateways need it."""
    reconnect_initial_s: Seconds = 0.5
    reconnect_max_s: Seconds = 30.0


class ModbusLineDevice(ModbusDeviceBase):
    """A device on a line declared under `modbus_lines:` (a serial bus, or a gateway with
    settings of its own)."""

    driver: Literal["modbus"]
    line: Name


class ModbusLine(StrictModel):
    """A physical line or a gateway: requests on it never overlap."""

    name: Name
    transport: Literal["tcp", "rtu-over-tcp", "serial"]
    host: str | None = None
    """tcp and rtu-over-tcp: the gateway or converter."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """tcp and rtu-over-tcp; defaults to 502."""
    serial_port: str | None = None
    """serial: the device path, e.g. /dev/ttyUSB0 or /dev/ttyAMA0."""
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    timeout_s: Seconds = 1.0
    pause_s: float = Field(default=0.0, ge=0, le=10)
    """Silence between two requests; RTU's 3.5-character gap is always kept on top."""
    max_connections: int = Field(default=1, ge=1, le=16)
    """tcp: connections the gateway accepts; the units are shared out among them."""
    reconnect_initial_s: Seconds = 0.5
    reconnect_max_s: Seconds = 30.0

    @model_validator(mode="after")
    def _transport_fields(self) -> Self:
        if self.transport == "serial":
            if not self.serial_port:
                raise ValueError("a serial line needs serial_port (e.g. /dev/ttyUSB0)")
            if self.host is not None or self.port is not None:
                raise ValueError("a serial line has serial_port, not host and port")
            if self.max_connections != 1:
                raise ValueError("a serial line has one connection: max_connections must be 1")
        else:
            if not self.host:
                raise ValueError(f"a {self.transport} line needs host")
            if self.serial_port is not None:
                raise ValueError(f"a {self.transport} line has host and port, not serial_port")
        return self


def implicit_line(device: ModbusTcpDevice) -> ModbusLine:
    """The line a `modbus-tcp` device stands for: its host and port."""
    return ModbusLine(
        name=_line_name(device.host, device.port, device.framing),
        transport="tcp" if device.framing == "mbap" else "rtu-over-tcp",
        host=device.host,
        port=device.port,
        timeout_s=device.timeout_s,
        pause_s=device.pause_s,
        reconnect_initial_s=device.reconnect_initial_s,
        reconnect_max_s=device.reconnect_max_s,
    )


def _line_name(host: str, port: int, framing: str) -> str:
    safe = "".join(c if c.isalnum() else "-" for c in host.lower())
    return f"tcp-{safe}-{port}" + ("-rtu" if framing == "rtu" else "")


ModbusDevice = ModbusTcpDevice | ModbusLineDevice
