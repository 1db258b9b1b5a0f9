"""OPC UA in the driver registry: each device is a server of its own, one session each."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from drivers.base import Driver, Place, ProtocolEntry
from edge_agent.clock import Clock
from edge_agent.model import count

from .config import OpcUaDevice

__all__ = ["OPCUA"]


class _OpcUa(ProtocolEntry[OpcUaDevice, OpcUaDevice, object]):
    """The line is the device: its settings are its session's."""

    name = "opcua"
    line_noun = "OPC UA"
    catalogue_device = MappingProxyType({"driver": "opcua", "endpoint": "opc.tcp://model"})

    def line_of(self, device: OpcUaDevice, site: object) -> tuple[str, OpcUaDevice]:
        return device.name, device

    def open(self, line: OpcUaDevice, devices: Sequence[OpcUaDevice], clock: Clock) -> Driver:
        from .driver import OpcUaDriver

        return OpcUaDriver(line, clock)

    def describe(self, line: OpcUaDevice, devices: Sequence[OpcUaDevice]) -> list[str]:
        security = line.security
        text = [
            "",
            f"{line.name} (OPC UA {line.endpoint}, {security.policy} {security.mode}, "
            f"{line.mode} every {line.poll_interval_s:g} s)",
        ]
        for name, node in line.points.items():
            limits = (
                f" {node.min:g}..{node.max:g}"
                if (node.min is not None and node.max is not None)
                else ""
            )
            what = (
                f"method {node.method}"
                if node.method
                else f"writable{limits}"
                if node.writable
                else ""
            )
            unit = f" [{node.unit}]" if node.unit else ""
            text.append(f"    {name:<22} {node.node_id or node.browse_path or '':<34} {what}{unit}")
        return text

    def plan(self, device: OpcUaDevice) -> list[str]:
        call = "subscription" if device.mode == "subscribe" else "Read call"
        return [
            f"{device.name}: OPC UA, one {call} per poll interval for "
            f"{count(len(device.points), 'node')}"
        ]

    def locate(self, line: OpcUaDevice, device: OpcUaDevice) -> Place:
        return Place(device.endpoint)


OPCUA = _OpcUa()
"""`opcua` devices; a catalogue model is validated as a device at `opc.tcp://model`."""
