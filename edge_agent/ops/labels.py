"""Where each device is, in the words an operator searches for: line, unit, address, endpoint.

The same fields label a device's metrics and ride on its log records, so a metric that
alarms and the log line that explains it name the device the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.registry import Site, lines

__all__ = ["DeviceWhere", "where_devices_are"]


@dataclass(frozen=True, slots=True)
class DeviceWhere:
    name: str
    line: str
    """The driver's name: a Modbus line or gateway, or the OPC UA device itself."""
    address: str
    """`host:port`, a serial port, or an `opc.tcp://` endpoint."""
    unit: int | None
    """The Modbus unit id; None for OPC UA."""
    poll_interval_s: float

    def log_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {"line": self.line}
        if self.unit is None:
            fields["endpoint"] = self.address
        else:
            fields["unit"] = self.unit
            fields["address"] = self.address
        return fields

    def metric_labels(self) -> dict[str, str]:
        labels = {"device": self.name, "line": self.line}
        if self.unit is None:
            labels["endpoint"] = self.address
        else:
            labels["unit"] = str(self.unit)
        return labels


def where_devices_are(config: Site) -> dict[str, DeviceWhere]:
    """Every device of the site by name, in the order of the site file."""
    found: dict[str, DeviceWhere] = {}
    for line in lines(config):
        for device in line.devices:
            place = line.protocol.locate(line.settings, device)
            found[device.name] = DeviceWhere(
                device.name, line.name, place.address, place.unit, device.poll_interval_s
            )
    return {d.name: found[d.name] for d in config.devices}
