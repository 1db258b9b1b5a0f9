"""The driver registry: every `driver:` of the site schema has a row, and each row's protocol
serves a sample device of it (its line, check, driver, poller policy, `check` and `plan`
text, and where it is). A new protocol adds its sample to `SAMPLES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from drivers.base import Place
from drivers.registry import DRIVERS, PROTOCOLS, AnyDevice, lines
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_site
from edge_agent.config.schema import SiteConfig
from edge_agent.ops.labels import where_devices_are

from .conftest import START

SAMPLES: dict[str, tuple[str, str, Place]] = {
    # driver: (the site's other sections, the device, where it is)
    "modbus-tcp": (
        "",
        "{name: dev, driver: modbus-tcp, model: eastron-sdm630, host: 10.0.0.5, unit: 3}",
        Place("10.0.0.5:502", 3),
    ),
    "modbus": (
        "modbus_lines: [{name: rs485, transport: serial, serial_port: /dev/ttyUSB0}]",
        "{name: dev, driver: modbus, line: rs485, unit: 2, model: eastron-sdm630}",
        Place("/dev/ttyUSB0", 2),
    ),
    "opcua": (
        "",
        "{name: dev, driver: opcua, model: electric-furnace, endpoint: 'opc.tcp://10.0.0.30:4840'}",
        Place("opc.tcp://10.0.0.30:4840"),
    ),
}


def _site(tmp_path: Path, sections: str, *devices: str) -> SiteConfig:
    site = tmp_path / "site.yaml"
    listed = "".join(f"\n  - {device}" for device in devices)
    site.write_text(f"site: {{name: press-shop, park: test-park}}\n{sections}\ndevices:{listed}\n")
    return load_site(site, environ={})


def test_every_driver_of_the_site_schema_has_a_row_and_a_sample() -> None:
    devices: dict[str, Any] = SiteConfig.model_json_schema()["properties"]["devices"]
    assert set(devices["items"]["discriminator"]["mapping"]) == set(DRIVERS) == set(SAMPLES)
    assert get_args(AnyDevice) == tuple(row.model for row in DRIVERS.values())
    for driver, row in DRIVERS.items():
        assert get_args(row.model.model_fields["driver"].annotation) == (driver,)
    for protocol in PROTOCOLS.values():
        assert DRIVERS[protocol.catalogue_device["driver"]].protocol is protocol


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_each_protocol_serves_a_sample_device(driver: str, tmp_path: Path) -> None:
    sections, device_yaml, place = SAMPLES[driver]
    config = _site(tmp_path, sections, device_yaml)
    [device] = config.devices
    row = DRIVERS[driver]
    assert isinstance(device, row.model)
    [line] = lines(config)
    protocol = line.protocol
    assert (protocol, line.devices) == (row.protocol, (device,))
    assert protocol.check(device, config) == []
    assert protocol.locate(line.settings, device) == place
    where = where_devices_are(config)["dev"]
    assert (where.line, where.address, where.unit) == (line.name, place.address, place.unit)
    described = protocol.describe(line.settings, line.devices)
    assert described[0] == ""
    assert all(name in "\n".join(described) for name in device.points)
    assert protocol.plan(device)[0].startswith("dev: ")
    policy = protocol.policy(device)
    assert policy is None or policy.degrade_after >= 1
    opened = protocol.open(line.settings, list(line.devices), SimClock(START))
    assert (opened.name, list(opened.devices)) == (line.name, ["dev"])
    polled = {point for group in opened.poll_groups() for point in group.points}
    assert polled
    assert polled <= {f"dev/{name}" for name in device.points}  # an OPC UA method is not read


def test_lines_list_the_protocols_in_the_order_of_the_table(tmp_path: Path) -> None:
    """The check output, the pollers and the metrics list Modbus lines first, each protocol's
    lines in the order of their first device; devices at one host and port share a line."""
    config = _site(
        tmp_path,
        "",
        SAMPLES["opcua"][1],
        "{name: b, driver: modbus-tcp, model: eastron-sdm630, host: 10.0.0.7}",
        "{name: a, driver: modbus-tcp, model: eastron-sdm630, host: 10.0.0.5}",
        "{name: c, driver: modbus-tcp, model: eastron-sdm630, host: 10.0.0.7, unit: 2}",
    )
    assert [(line.key, [d.name for d in line.devices]) for line in lines(config)] == [
        (("modbus", "tcp-10-0-0-7-502"), ["b", "c"]),
        (("modbus", "tcp-10-0-0-5-502"), ["a"]),
        (("opcua", "dev"), ["dev"]),
    ]


def test_a_device_on_a_line_not_declared_is_refused_by_its_protocol() -> None:
    device = {"name": "m", "driver": "modbus", "line": "bus", "points": {"p": {"address": 0}}}
    with pytest.raises(
        ValidationError, match=r"devices\[m\]\.line: no line named 'bus' under modbus_lines"
    ):
        SiteConfig.model_validate(
            {"site": {"name": "press-shop", "park": "test-park"}, "devices": [device]}
        )
