"""The Modbus TCP driver against a real pymodbus server on a free loopback port."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from drivers.base import DeviceUnavailable
from drivers.modbus.codec import ByteOrder, DataType
from drivers.modbus.config import ModbusPoint, ModbusTcpDevice, implicit_line
from drivers.modbus.driver import ModbusLineDriver
from drivers.modbus.planner import Table
from edge_agent.clock import SimClock
from edge_agent.model import Quality
from simulators.modbus_server import ModbusSimulator, SimulatedUnit
from simulators.ports import free_port

VALUES = {
    DataType.INT16: -1234,
    DataType.UINT16: 54321,
    DataType.INT32: -123456789,
    DataType.UINT32: 3_000_000_000,
    DataType.INT64: -(2**40) - 5,
    DataType.UINT64: 2**60 + 7,
    DataType.FLOAT32: 230.5,
    DataType.FLOAT64: 12345.678901,
    DataType.BOOL: True,
}


def every_type_in_every_order() -> dict[str, ModbusPoint]:
    points, address = {}, 0
    for dtype, order in itertools.product(VALUES, ByteOrder):
        points[f"{dtype.value}_{order.value.lower()}"] = ModbusPoint(
            address=address, type=dtype, byte_order=order, scale=1.0
        )
        address += dtype.registers
    points["coil"] = ModbusPoint(address=3, table=Table.COIL, type=DataType.BOOL)
    points["scaled"] = ModbusPoint(
        address=500, type=DataType.INT16, scale=0.1, offset=-40, unit="degC"
    )
    return points


def device(
    port: int, points: dict[str, ModbusPoint], *, max_gap_registers: int = 0
) -> ModbusTcpDevice:
    return ModbusTcpDevice(
        driver="modbus-tcp",
        name="dev",
        host="127.0.0.1",
        port=port,
        points=points,
        timeout_s=0.5,
        max_gap_registers=max_gap_registers,
    )


def driver_for(config: ModbusTcpDevice, clock: SimClock) -> ModbusLineDriver:
    return ModbusLineDriver(implicit_line(config), [config], clock)


async def test_every_type_and_order_reads_back_through_a_real_server(clock: SimClock) -> None:
    points = every_type_in_every_order()
    served = {name: VALUES[p.type] for name, p in points.items() if p.table is Table.HOLDING}
    served.update(coil=True, scaled=21.5)
    async with ModbusSimulator([SimulatedUnit(1, points, lambda: served)]) as server:
        config = device(server.port, points, max_gap_registers=10)
        async with driver_for(config, clock) as driver:
            [group] = driver.poll_groups()
            readings = {r.point.split("/")[1]: r for r in await driver.read(group, clock.now())}
    assert all(r.quality is Quality.GOOD for r in readings.values()), readings
    for name, point in points.items():
        expected = served[name]
        if point.type is DataType.FLOAT32 or name == "scaled":
            assert readings[name].value == pytest.approx(expected)
        else:
            assert readings[name].value == expected, name
        assert readings[name].at == clock.now()
    # 36 values in 4 orders, one coil and one far point: 3 requests (coils, 2 holding blocks)
    assert server.requests == 3


async def test_an_exception_reply_marks_only_that_block_bad(clock: SimClock) -> None:
    served_points = {"a": ModbusPoint(address=0), "b": ModbusPoint(address=1)}
    asked = {**served_points, "beyond": ModbusPoint(address=400)}
    unit = SimulatedUnit(1, served_points, lambda: {"a": 7, "b": 8})
    async with (
        ModbusSimulator([unit]) as server,
        driver_for(device(server.port, asked), clock) as driver,
    ):
        [group] = driver.poll_groups()
        readings = {r.point: r for r in await driver.read(group, clock.now())}
    assert readings["dev/a"].value == 7
    assert readings["dev/b"].value == 8
    assert readings["dev/beyond"].quality is Quality.BAD
    assert "illegal data address" in (readings["dev/beyond"].error or "")


async def test_nobody_listening_is_device_unavailable(clock: SimClock) -> None:
    driver = driver_for(device(free_port(), {"a": ModbusPoint(address=0)}), clock)
    with pytest.raises(DeviceUnavailable, match="cannot connect"):
        async with driver:
            pass


async def test_a_server_that_goes_silent_costs_its_timeout_in_clock_time() -> None:
    """The pymodbus server leaves accepted connections open when it stops: half-open, as after
    a gateway reboot. The request times out on the agent's clock, not the wall clock."""
    clock = SimClock(io_grace_s=0.05)
    points = {"a": ModbusPoint(address=0)}
    server = ModbusSimulator([SimulatedUnit(1, points, lambda: {"a": 1})])
    await server.__aenter__()
    async with driver_for(device(server.port, points), clock) as driver:
        [group] = driver.poll_groups()
        assert (await driver.read(group, clock.now()))[0].value == 1
        await server.__aexit__(None, None, None)
        read = asyncio.create_task(driver.read(group, clock.now()))
        clock.track(read)
        await clock.advance(0.4)
        assert not read.done()
        await clock.advance(0.2)  # the device's timeout_s is 0.5
        with pytest.raises(DeviceUnavailable, match=r"no answer within 0\.5 s") as caught:
            await read
    assert caught.value.device == "dev"  # the unit, not yet the connection
