"""From a device's config to its driver: the one table a new protocol joins."""

from __future__ import annotations

from edge_agent.config.schema import Device

from .base import Driver
from .modbus.driver import ModbusTcpDriver

__all__ = ["make_driver"]


def make_driver(device: Device) -> Driver:
    match device.driver:
        case "modbus-tcp":
            return ModbusTcpDriver(device)
    raise AssertionError(f"no driver for {device.driver!r}")  # pragma: no cover
