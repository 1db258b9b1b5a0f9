"""Shared fixtures: free loopback ports, a real Mosquitto, a simulated SDM630 meter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge_agent.clock import SimClock
from edge_agent.config.loader import load_modbus_model
from simulators.broker import MosquittoBroker, find_mosquitto
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator, SimulatedUnit
from simulators.ports import free_port

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own folder: the agent's durable outbox (state/) lands there."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: the README's test command installs it")
    async with MosquittoBroker(free_port()) as running:
        yield running


@pytest.fixture
def meter(clock: SimClock) -> MeterModel:
    return MeterModel(clock, base_kw=180.0, seed=7)


@pytest.fixture
async def meter_server(meter: MeterModel) -> AsyncIterator[ModbusSimulator]:
    points = load_modbus_model("eastron-sdm630").points
    async with ModbusSimulator([SimulatedUnit(1, points, meter.values)]) as server:
        yield server


async def receive(client: aiomqtt.Client, count: int, *, timeout_s: float = 20) -> list[Any]:
    """The next `count` messages on `client`'s subscriptions, as JSON."""
    received: list[Any] = []
    async with asyncio.timeout(timeout_s):
        async for message in client.messages:
            received.append(json.loads(bytes(message.payload)))
            if len(received) == count:
                break
    return received
