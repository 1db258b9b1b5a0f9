"""The driver registry: the one table a new protocol joins.

`DRIVERS` maps each `driver:` a site file may write to its config model and its protocol's
entry (`drivers/<protocol>/registration.py`): how its devices group into lines or sessions,
how a line's driver opens on a clock, what the poller does with a silent device, and how
`edge-agent check` and `plan`, the metrics and the logs describe and locate a device. The
site schema builds its union of devices from the table; the agent, reload, the command line,
the loader and the metrics labels loop over it, and none of them names a protocol.

A new protocol is a folder (its config model, its driver and its `registration.py`) and one
row below, with its model added to `AnyDevice` beside it: mypy needs that union spelt out,
and `tests/test_registry.py` fails if the two disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Protocol

from .base import LineSettings, ProtocolEntry
from .modbus.config import ModbusLineDevice, ModbusTcpDevice
from .modbus.registration import MODBUS, ModbusSite
from .opcua.config import OpcUaDevice
from .opcua.registration import OPCUA

__all__ = [
    "DRIVERS",
    "PROTOCOLS",
    "AnyDevice",
    "DriverRow",
    "Line",
    "LineKey",
    "Site",
    "lines",
    "protocol_of",
]

AnyDevice = ModbusTcpDevice | ModbusLineDevice | OpcUaDevice
"""A device of any protocol, as a site file's `devices:` holds it."""


class Site(ModbusSite, Protocol):
    """What the registry reads of a site file: its devices, and the sections the protocols
    declare their lines in (a protocol with such a section adds its own base here)."""

    @property
    def devices(self) -> Sequence[AnyDevice]: ...


Entry = ProtocolEntry[Any, Any, Site]


@dataclass(frozen=True, slots=True)
class DriverRow:
    model: type[AnyDevice]
    """The config model of the devices that write this `driver:`."""
    protocol: Entry


DRIVERS: Final[Mapping[str, DriverRow]] = MappingProxyType(
    {
        "modbus-tcp": DriverRow(ModbusTcpDevice, MODBUS),
        "modbus": DriverRow(ModbusLineDevice, MODBUS),
        "opcua": DriverRow(OpcUaDevice, OPCUA),
    }
)
"""`driver:` -> its row, in the order the site schema lists them."""

PROTOCOLS: Final[Mapping[str, Entry]] = MappingProxyType(
    {row.protocol.name: row.protocol for row in DRIVERS.values()}
)
"""Each protocol by its name, in the order of its first row: lines are listed in this order."""

LineKey = tuple[str, str]
"""(protocol, line name): ("modbus", "rs485") or ("opcua", "oven"); a Modbus line and an OPC
UA device may share a name without being confused."""


@dataclass(frozen=True, slots=True)
class Line:
    """What one driver serves, as the site file says it: a Modbus line and its devices, or an
    OPC UA device. Equal lines need no new driver."""

    protocol: Entry
    name: str
    settings: LineSettings
    """What its driver opens: a `ModbusLine`, or the OPC UA device itself."""
    devices: tuple[AnyDevice, ...]

    @property
    def key(self) -> LineKey:
        return (self.protocol.name, self.name)


def protocol_of(device: AnyDevice) -> Entry:
    """The entry of the device's protocol, by its `driver:`."""
    return DRIVERS[device.driver].protocol


def lines(site: Site) -> list[Line]:
    """Every line of the site with its devices: the protocols in the order of `PROTOCOLS`,
    the lines of each in the order of their first device in the site file."""
    found: dict[LineKey, tuple[Entry, LineSettings, list[AnyDevice]]] = {}
    for device in site.devices:
        protocol = protocol_of(device)
        name, settings = protocol.line_of(device, site)
        found.setdefault((protocol.name, name), (protocol, settings, []))[2].append(device)
    rank = {name: index for index, name in enumerate(PROTOCOLS)}
    return sorted(
        (Line(p, name, s, tuple(devices)) for (_, name), (p, s, devices) in found.items()),
        key=lambda line: rank[line.protocol.name],
    )
