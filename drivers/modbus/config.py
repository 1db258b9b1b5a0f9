"""Configuration of a Modbus device and its points, as written in a site or catalogue file."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, PositiveFloat, ValidationInfo, field_validator, model_validator

from edge_agent.config.base import Name, StrictModel

from .codec import ByteOrder, DataType
from .planner import MAX_REGISTERS_PER_READ, Span, Table

__all__ = ["ModbusPoint", "ModbusTcpDevice", "PointRole"]

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
    poll_interval_s: PositiveFloat | None = None
    """Defaults to the device's poll interval; must be a whole multiple of it."""
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.table.is_bits and self.type is not DataType.BOOL:
            raise ValueError(f"a {self.table.value} holds one bit: its type must be bool")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.role is not None and _ROLE_UNITS[self.role] not in (None, self.unit):
            raise ValueError(
                f"role {self.role} needs unit {_ROLE_UNITS[self.role]!r}, found {self.unit!r}; "
                "use scale to convert (e.g. W to kW: scale 0.001)"
            )
        return self

    def span(self, key: str) -> Span:
        width = 1 if self.table.is_bits else self.type.registers
        return Span(key, self.table, self.address, width)


class ModbusTcpDevice(StrictModel):
    """A Modbus device reached over TCP, directly or through a gateway (one unit id)."""

    driver: Literal["modbus-tcp"]
    name: Name
    model: str | None = None
    """A catalogue model (configs/devices/<model>.yaml) whose points this device starts from."""
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=255)
    """The Modbus unit (slave) id; gateways route by it, TCP devices often ignore it."""
    poll_interval_s: PositiveFloat = 1.0
    timeout_s: PositiveFloat = 1.0
    max_registers_per_read: int = Field(default=MAX_REGISTERS_PER_READ, ge=1, le=125)
    max_gap_registers: int = Field(default=0, ge=0, le=124)
    """Unused registers a read may span to merge two points; only for devices that allow it."""
    reconnect_initial_s: PositiveFloat = 0.5
    reconnect_max_s: PositiveFloat = 30.0
    stale_after_s: PositiveFloat | None = None
    """A value older than this is stale; defaults to three poll intervals of the point."""
    points: dict[Name, ModbusPoint] = Field(min_length=1)

    @field_validator("points")
    @classmethod
    def _intervals(
        cls, points: dict[str, ModbusPoint], info: ValidationInfo
    ) -> dict[str, ModbusPoint]:
        base = info.data.get("poll_interval_s")
        if base is None:
            return points
        for name, point in points.items():
            interval = point.poll_interval_s
            if interval is None:
                continue
            ratio = interval / base
            if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(
                    f"point {name}: poll_interval_s {interval:g} must be a whole multiple of "
                    f"the device's poll_interval_s {base:g}"
                )
        return points
