"""Every device model in the catalogue loads, and reads back through the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.modbus.codec import DataType
from drivers.modbus.config import ModbusPoint, implicit_line
from drivers.modbus.driver import ModbusLineDriver
from edge_agent.clock import SimClock
from edge_agent.config.catalogue import BUILTIN_CATALOGUE
from edge_agent.config.loader import load_modbus_model
from edge_agent.model import Quality
from simulators.modbus_server import ModbusSimulator, SimulatedUnit

MODELS = sorted(p.stem for p in BUILTIN_CATALOGUE.glob("*.yaml"))
MODBUS = [m for m in MODELS if "protocol: modbus" in (BUILTIN_CATALOGUE / f"{m}.yaml").read_text()]
OPCUA = [m for m in MODELS if "protocol: opcua" in (BUILTIN_CATALOGUE / f"{m}.yaml").read_text()]


def test_the_catalogue_has_the_models_integrators_ask_for() -> None:
    assert {"eastron-sdm630", "schneider-pm5000", "sunspec-inverter", "generic-vsd"} <= set(MODELS)


def sample_values(points: dict[str, ModbusPoint]) -> dict[str, float | bool]:
    """A value per point that survives the point's type, scale and scale factor exactly."""
    exponents = {p.scale_factor for p in points.values() if p.scale_factor}
    values: dict[str, float | bool] = {}
    for index, name in enumerate(sorted(points)):
        if name in exponents:
            values[name] = -(index % 3)  # a SunSpec sunssf: 0, -1 or -2
    for index, (name, point) in enumerate(sorted(points.items())):
        if name in values:
            continue
        if point.type is DataType.BOOL:
            values[name] = index % 2 == 0
            continue
        sf = int(values.get(point.scale_factor, 0)) if point.scale_factor else 0
        raw = 3 + index * 7 if not point.type.is_float else 230.25 + index
        values[name] = raw * point.scale * 10.0**sf + point.offset
    return values


@pytest.mark.parametrize("model", MODBUS)
async def test_modbus_model_reads_back_through_the_simulator(model: str, clock: SimClock) -> None:
    device = load_modbus_model(model)
    assert device.points, model
    assert (Path(BUILTIN_CATALOGUE) / f"{model}.yaml").read_text().startswith("#"), (
        "a catalogue file starts with comments saying what the device is"
    )
    values = sample_values(dict(device.points))
    unit = SimulatedUnit(1, device.points, lambda: values)
    async with ModbusSimulator([unit]) as server:
        config = device.model_copy(update={"host": "127.0.0.1", "port": server.port})
        async with ModbusLineDriver(implicit_line(config), [config], clock) as driver:
            readings = []
            for group in driver.poll_groups():
                readings += await driver.read(group, clock.now())
    assert {r.point.split("/")[1] for r in readings} == set(device.points)
    for reading in readings:
        name = reading.point.split("/")[1]
        assert reading.quality is Quality.GOOD, (name, reading.error)
        assert reading.value == pytest.approx(values[name], rel=1e-6, abs=1e-9), name
