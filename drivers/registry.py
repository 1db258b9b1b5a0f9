"""From the site's devices to drivers: the one table a new protocol joins.

Modbus devices are grouped by the line they are on (a declared `modbus_lines:` entry, or the
host and port of `modbus-tcp` devices), so that one driver owns each physical line and its
requests never overlap.
"""

from __future__ import annotations

from edge_agent.config.schema import SiteConfig

from .modbus.config import (
    ModbusDevice,
    ModbusLine,
    ModbusLineDevice,
    ModbusTcpDevice,
    implicit_line,
)

__all__ = ["modbus_lines"]


def modbus_lines(config: SiteConfig) -> list[tuple[ModbusLine, list[ModbusDevice]]]:
    """Each Modbus line of the site with its devices, in the order of the site file."""
    declared = {line.name: line for line in config.modbus_lines}
    lines: dict[str, tuple[ModbusLine, list[ModbusDevice]]] = {}
    for device in config.devices:
        if isinstance(device, ModbusLineDevice):
            line = declared[device.line]
        elif isinstance(device, ModbusTcpDevice):
            line = implicit_line(device)
        else:
            continue
        lines.setdefault(line.name, (line, []))[1].append(device)
    return list(lines.values())
