"""Commands from the park, through a real broker: validated, answered, applied or not."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_site
from simulators.broker import MosquittoBroker
from simulators.modbus_server import ModbusSimulator
from tests.conftest import receive

BASE = "energy/v1/test-park/press-shop"


@pytest.fixture
async def agent(
    tmp_path: Path, clock: SimClock, meter_server: ModbusSimulator, broker: MosquittoBroker
) -> Any:
    site = tmp_path / "site.yaml"
    site.write_text(f"""
site: {{name: press-shop, park: test-park}}
broker: {{host: 127.0.0.1, port: {broker.port}}}
devices:
  - {{name: main-meter, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1,
     port: {meter_server.port}}}
""")
    running = Agent(load_site(site), clock)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(running.run(stop))
        async with asyncio.timeout(10):
            await running.publisher.ready.wait()  # subscribed to its command topics
        yield running
        stop.set()


async def exchange(
    port: int, commands: list[tuple[str, object]], answers: int
) -> list[dict[str, Any]]:
    """Send commands as the park does; collect `answers` responses."""
    async with aiomqtt.Client("127.0.0.1", port) as park:
        await park.subscribe(f"{BASE}/command-responses", qos=1)
        for kind, body in commands:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            await park.publish(f"{BASE}/commands/{kind}", payload, qos=1)
        return await receive(park, answers, timeout_s=10)


async def test_bad_commands_are_rejected_with_a_reason_and_change_nothing(
    agent: Agent, broker: MosquittoBroker, clock: SimClock
) -> None:
    soon = (clock.now() + timedelta(hours=1)).isoformat()
    responses = await exchange(
        broker.port,
        [
            ("demand_response", b"{not json"),
            ("reboot", {"type": "reboot", "id": "c2", "site": "press-shop"}),
            (
                "demand_response",
                {
                    "type": "demand_response",
                    "id": "c3",
                    "site": "press-shop",
                    "limit_kw": -5,
                    "start": soon,
                    "duration_s": 900,
                },
            ),
            (
                "demand_response",
                {
                    "type": "demand_response",
                    "id": "c4",
                    "site": "press-shop",
                    "limit_kw": 400,
                    "reduction_kw": 50,
                    "start": soon,
                    "duration_s": 900,
                },
            ),
            (
                "override",
                {
                    "type": "override",
                    "id": "c5",
                    "site": "press-shop",
                    "device": "boiler-9",
                    "state": "off",
                    "until": soon,
                },
            ),
            (
                "advisory",
                {"type": "advisory", "id": "c6", "site": "other-site", "advisory": True},
            ),  # another site's: no answer at all
            (
                "advisory",
                {
                    "type": "advisory",
                    "id": "c7",
                    "site": "press-shop",
                    "advisory": True,
                    "extra": 1,
                },
            ),
        ],
        answers=6,
    )
    by_id = {r["id"]: r for r in responses}
    assert all(r["status"] == "rejected" for r in responses)
    assert None in by_id  # the JSON could not be read far enough to have an id
    assert "does not match any of the expected tags" in by_id["c2"]["reason"]
    assert "limit_kw: Input should be greater than 0" in by_id["c3"]["reason"]
    assert "exactly one of limit_kw and reduction_kw" in by_id["c4"]["reason"]
    assert "device 'boiler-9' carries no load" in by_id["c5"]["reason"]
    assert "extra: Extra inputs are not permitted" in by_id["c7"]["reason"]
    assert "c6" not in by_id
    inputs = agent.commands.inputs
    assert not inputs.advisory
    assert not inputs.demand_response
    assert not inputs.overrides


async def test_valid_commands_are_accepted_and_applied(
    agent: Agent, broker: MosquittoBroker, clock: SimClock
) -> None:
    now = clock.now()
    responses = await exchange(
        broker.port,
        [
            (
                "demand_response",
                {
                    "type": "demand_response",
                    "id": "dr-17",
                    "site": "press-shop",
                    "reduction_kw": 50,
                    "start": now.isoformat(),
                    "duration_s": 1800,
                },
            ),
            (
                "override",
                {
                    "type": "override",
                    "id": "ov-1",
                    "site": "press-shop",
                    "device": "main-meter",
                    "state": "on",
                    "until": (now + timedelta(hours=2)).isoformat(),
                },
            ),
            (
                "advisory",
                {"type": "advisory", "id": "adv-1", "site": "press-shop", "advisory": True},
            ),
        ],
        answers=3,
    )
    assert [(r["id"], r["status"]) for r in responses] == [
        ("dr-17", "accepted"),
        ("ov-1", "rejected"),  # the meter carries no load: an override could do nothing
        ("adv-1", "accepted"),
    ]
    assert "carries no load the agent controls" in responses[1]["reason"]
    inputs = agent.commands.inputs
    assert inputs.demand_response["dr-17"].reduction_kw == 50
    assert not inputs.overrides
    assert inputs.advisory
