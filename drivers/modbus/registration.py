"""Modbus in the driver registry: one driver per line, whatever its devices' `driver:`.

A `modbus-tcp` device stands for a line of its own host and port (devices at the same host
and port share it, as a gateway needs); a `modbus` device is on a line declared under
`modbus_lines:` (a serial bus, or a gateway with settings of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Protocol

from drivers.base import DevicePolicy, Driver, Place, ProtocolEntry
from edge_agent.clock import Clock
from edge_agent.config.findings import Absent, Finding, did_you_mean
from edge_agent.model import count

from .config import ModbusDevice, ModbusLine, ModbusLineDevice, implicit_line

__all__ = ["MODBUS", "ModbusSite"]


class ModbusSite(Protocol):
    """What Modbus reads of the site file besides its devices: the declared lines."""

    @property
    def modbus_lines(self) -> Sequence[ModbusLine]: ...


class _Modbus(ProtocolEntry[ModbusLine, ModbusDevice, ModbusSite]):
    name = "modbus"
    line_noun = "line"
    catalogue_device = MappingProxyType({"driver": "modbus-tcp", "host": "model"})

    def line_of(self, device: ModbusDevice, site: ModbusSite) -> tuple[str, ModbusLine]:
        if isinstance(device, ModbusLineDevice):
            line = {line.name: line for line in site.modbus_lines}[device.line]
        else:
            line = implicit_line(device)
        return line.name, line

    def check(self, device: ModbusDevice, site: ModbusSite) -> list[Finding]:
        lines = sorted({line.name for line in site.modbus_lines})
        if not isinstance(device, ModbusLineDevice) or device.line in lines:
            return []
        known = ", ".join(lines) or "none are declared"
        return [
            Finding(
                ("line",),
                f"no line named {device.line!r} under modbus_lines ({known})"
                f"{did_you_mean(device.line, lines)}",
                Absent(("modbus_lines",), device.line),
            )
        ]

    def open(self, line: ModbusLine, devices: Sequence[ModbusDevice], clock: Clock) -> Driver:
        from .driver import ModbusLineDriver

        return ModbusLineDriver(line, devices, clock)

    def policy(self, device: ModbusDevice) -> DevicePolicy:
        """A unit that stops answering is polled rarely, so that its timeouts stop costing
        the other units on its line their poll rate."""
        return DevicePolicy(
            device.degrade_after, 2 * device.poll_interval_s, device.degraded_retry_max_s
        )

    def describe(self, line: ModbusLine, devices: Sequence[ModbusDevice]) -> list[str]:
        where = line.serial_port if line.transport == "serial" else f"{line.host}:{line.port}"
        serial = (
            f" {line.baudrate} {line.bytesize}{line.parity}{line.stopbits}"
            if line.transport == "serial"
            else ""
        )
        text = [
            "",
            f"line {line.name} ({line.transport} {where}{serial}, "
            f"timeout {line.timeout_s:g} s, pause {line.pause_s:g} s)",
        ]
        for device in devices:
            model = f", model {device.model}" if device.model else ""
            text.append(f"  {device.name} (unit {device.unit}{model})")
            for name, point in device.points.items():
                interval = point.poll_interval_s or device.poll_interval_s
                unit = f" [{point.unit}]" if point.unit else ""
                role = f"  role={point.role}" if point.role else ""
                writable = ""
                if point.writable:
                    limits = f" {point.min:g}..{point.max:g}" if point.min is not None else ""
                    writable = f"  writable{limits}"
                text.append(
                    f"    {name:<22} {point.table.value:<14} {point.address:>5} "
                    f"{point.type.value:<8} {point.byte_order.value}  every {interval:g} s"
                    f"{unit}{role}{writable}"
                )
        return text

    def plan(self, device: ModbusDevice) -> list[str]:
        from .driver import plan_groups

        total_per_s = 0.0
        text = [f"{device.name}: planned requests"]
        for group, requests in plan_groups(device):
            text.append(
                f"  every {group.interval_s:g} s: {count(len(group.points), 'point')} in "
                f"{count(len(requests), 'request')}"
            )
            text += [f"    {request.describe()}" for request in requests]
            total_per_s += len(requests) / group.interval_s
        text.append(f"  = {total_per_s:.2f} requests/s")
        return text

    def locate(self, line: ModbusLine, device: ModbusDevice) -> Place:
        if line.transport == "serial":
            return Place(line.serial_port or "", device.unit)
        return Place(f"{line.host}:{line.port or 502}", device.unit)


MODBUS = _Modbus()
"""`modbus-tcp` and `modbus` devices; a catalogue model is validated as a `modbus-tcp`
device at host `model`."""
