"""Devices that break the spec: refused ranges, exception codes, garbage, late answers, and
writes that must be right or not happen at all. All against the real simulator."""

from __future__ import annotations

import asyncio
import logging

import pytest

from drivers.base import DeviceUnavailable, WriteFailed, WriteRefused
from drivers.modbus.codec import ByteOrder, DataType
from drivers.modbus.config import ModbusPoint, ModbusTcpDevice, implicit_line
from drivers.modbus.driver import RETRY_REFUSED_EVERY, ModbusLineDriver
from drivers.modbus.planner import Table
from edge_agent.clock import SimClock
from edge_agent.model import Quality
from simulators.faults import Fault
from simulators.modbus_server import ModbusSimulator, SimulatedUnit


def device(port: int, points: dict[str, ModbusPoint], **extra: object) -> ModbusTcpDevice:
    return ModbusTcpDevice.model_validate(
        {
            "driver": "modbus-tcp",
            "name": "dev",
            "host": "127.0.0.1",
            "port": port,
            "points": points,
            "timeout_s": 0.3,
            **extra,
        }
    )


def driver_for(config: ModbusTcpDevice, clock: SimClock) -> ModbusLineDriver:
    return ModbusLineDriver(implicit_line(config), [config], clock)


async def test_a_block_refused_with_exception_02_is_split_and_every_valid_point_read(
    clock: SimClock, caplog: pytest.LogCaptureFixture
) -> None:
    # The device maps 0-1, 4-5 and 10; 2-3 and 6-9 are holes it refuses (exception 02).
    served = {
        "a": ModbusPoint(address=0),
        "b": ModbusPoint(address=1),
        "c": ModbusPoint(address=4, type=DataType.UINT32),
        "d": ModbusPoint(address=10),
    }
    caplog.set_level(logging.INFO)
    asked = {**served, "ghost": ModbusPoint(address=7)}  # configured, but not on the device
    unit = SimulatedUnit(1, served, lambda: {"a": 1, "b": 2, "c": 70000, "d": 4}, strict_map=True)
    async with ModbusSimulator([unit]) as server:
        config = device(server.port, asked, max_gap_registers=10)
        async with driver_for(config, clock) as driver:
            [group] = driver.poll_groups()
            first = {r.point: r for r in await driver.read(group, clock.now())}
            requests_first = unit.requests
            second = {r.point: r for r in await driver.read(group, clock.now())}
            requests_second = unit.requests - requests_first
    for readings in (first, second):
        assert readings["dev/a"].value == 1
        assert readings["dev/b"].value == 2
        assert readings["dev/c"].value == 70000
        assert readings["dev/d"].value == 4
        assert readings["dev/ghost"].quality is Quality.BAD
        assert "illegal data address" in (readings["dev/ghost"].error or "")
    # The split plan is remembered: the next cycle does not ask for the hole again.
    assert requests_second < requests_first
    assert requests_second == 3  # 0-1, 4-5 and 10 (gaps no longer filled across holes)
    assert "split into" in caplog.text
    assert "ghost at holding 7 is refused" in caplog.text


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 10, 11])
async def test_an_exception_reply_marks_the_points_bad_and_names_the_code(
    clock: SimClock, code: int
) -> None:
    points = {"a": ModbusPoint(address=0)}
    unit = SimulatedUnit(1, points, lambda: {"a": 5}, fault=Fault.exception(code))
    async with (
        ModbusSimulator([unit]) as server,
        driver_for(device(server.port, points), clock) as driver,
    ):
        [group] = driver.poll_groups()
        [reading] = await driver.read(group, clock.now())
        assert reading.quality is Quality.BAD
        assert f"exception {code:02d}" in (reading.error or "")
        unit.fault = None
        # Other codes are per request; a point refused alone with 02 is only retried later.
        for _ in range(RETRY_REFUSED_EVERY if code == 2 else 1):
            [reading] = await driver.read(group, clock.now())
        assert reading.value == 5


async def test_garbage_and_late_answers_are_no_answer_and_the_next_request_is_clean() -> None:
    clock = SimClock(io_grace_s=0.1)
    points = {"a": ModbusPoint(address=0)}
    unit = SimulatedUnit(1, points, lambda: {"a": 9})
    async with (
        ModbusSimulator([unit]) as server,
        driver_for(device(server.port, points), clock) as driver,
    ):
        [group] = driver.poll_groups()
        for fault in (Fault.corrupt(), Fault.slow(0.4)):
            unit.fault = fault
            answers_before = server.answers
            read = asyncio.create_task(driver.read(group, clock.now()))
            clock.track(read)
            await clock.advance(1)
            with pytest.raises(DeviceUnavailable) as caught:
                await read
            assert caught.value.device == "dev", fault
            unit.fault = None
            await server.answered(answers_before + 1)  # the garbled or late answer is out
            [reading] = await driver.read(group, clock.now())
            assert reading.value == 9, fault


WRITABLE = {
    "speed_ref_hz": ModbusPoint(
        address=10,
        type=DataType.FLOAT32,
        byte_order=ByteOrder.CDAB,
        writable=True,
        min=0,
        max=50,
        verify_write=True,
    ),
    "setpoint_c": ModbusPoint(
        address=20, type=DataType.INT16, scale=0.1, writable=True, min=-20, max=120
    ),
    "run": ModbusPoint(address=0, table=Table.COIL, type=DataType.BOOL, writable=True),
    "power_kw": ModbusPoint(address=30, type=DataType.FLOAT32),
    "energy_wh": ModbusPoint(
        address=40,
        type=DataType.UINT64,
        byte_order=ByteOrder.DCBA,
        writable=True,
        min=0,
        max=1e12,
        write_function=16,
    ),
}


async def test_writes_use_the_configured_byte_order_and_are_logged(
    clock: SimClock, caplog: pytest.LogCaptureFixture
) -> None:
    values: dict[str, float | bool] = {
        "speed_ref_hz": 10.0,
        "setpoint_c": 20.0,
        "run": False,
        "energy_wh": 5,
    }
    written: list[tuple[str, float | bool]] = []

    def on_write(name: str, value: float | bool) -> None:
        written.append((name, value))
        values[name] = value

    unit = SimulatedUnit(7, WRITABLE, lambda: values, on_write=on_write)
    async with (
        ModbusSimulator([unit]) as server,
        driver_for(device(server.port, WRITABLE, unit=7), clock) as driver,
    ):
        caplog.set_level(logging.DEBUG)  # the driver logs each write at DEBUG
        await driver.write("dev/speed_ref_hz", 42.5)
        await driver.write("dev/setpoint_c", 65.3)
        await driver.write("dev/run", True)
        await driver.write("dev/energy_wh", 123456789012)
    assert written == [
        ("speed_ref_hz", 42.5),
        ("setpoint_c", pytest.approx(65.3)),
        ("run", True),
        ("energy_wh", 123456789012),
    ]
    # 42.5 as float32 is 0x422A0000; CDAB sends the low word first.
    assert "write dev unit 7 holding 10 (speed_ref_hz): 10.0 -> 42.5 (FC16 0000 422A)" in (
        caplog.text
    )
    assert "(FC06 028D)" in caplog.text  # 65.3 / 0.1 = 653 = 0x028D, one register: FC06
    assert "coil 0 (run): False -> True (FC05" in caplog.text


@pytest.mark.parametrize(
    ("point", "value", "reason"),
    [
        ("power_kw", 10.0, "not declared writable"),
        ("speed_ref_hz", 50.5, "outside its declared range 0.0 to 50.0"),
        ("setpoint_c", -25, "outside its declared range"),
        ("speed_ref_hz", float("nan"), "needs a number"),
        ("run", 2, "is a bool"),
        ("nope", 1, "no such point"),
    ],
)
async def test_bad_writes_are_refused_and_nothing_is_sent(
    clock: SimClock, point: str, value: float, reason: str
) -> None:
    unit = SimulatedUnit(1, WRITABLE, lambda: {})
    async with (
        ModbusSimulator([unit]) as server,
        driver_for(device(server.port, WRITABLE), clock) as driver,
    ):
        with pytest.raises(WriteRefused, match=reason):
            await driver.write(f"dev/{point}", value)
    assert unit.requests == 0


async def test_a_write_that_does_not_stick_fails_its_read_back(clock: SimClock) -> None:
    unit = SimulatedUnit(1, WRITABLE, lambda: {"speed_ref_hz": 0.0})  # ignores writes
    async with (
        ModbusSimulator([unit]) as server,
        driver_for(device(server.port, WRITABLE), clock) as driver,
    ):
        with pytest.raises(WriteFailed, match=r"wrote 30\.0, read back 0\.0"):
            await driver.write("dev/speed_ref_hz", 30.0)
