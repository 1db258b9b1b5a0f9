"""The agent holding a factory's demand on real protocols: a Modbus meter that measures a
chiller served over OPC UA, on simulated time. The limiter sheds the chiller, the process band
brings it back, and every action is in the site summary with its reason."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from asyncua import Client

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_modbus_model, load_opcua_model, load_site
from edge_agent.northbound.outbox import MemoryOutbox
from simulators.broker import MosquittoBroker
from simulators.machines import Chiller
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator, SimulatedUnit
from simulators.opcua_server import OpcUaSimulator, SimulatedMachine
from simulators.ports import free_port
from tests.conftest import receive
from tests.test_command_models import BAD


@dataclass
class Factory:
    chiller: Chiller
    meter_port: int
    chiller_url: str


@pytest.fixture
async def factory(tmp_path: Path, clock: SimClock) -> AsyncIterator[Factory]:
    chiller = Chiller(tank_m3=3.0)  # a small tank: the band binds within minutes
    meter = MeterModel(clock, base_kw=180.0, seed=3, extra_kw=chiller.power_kw)
    points = load_modbus_model("eastron-sdm630").points
    async with (
        ModbusSimulator([SimulatedUnit(1, points, meter.values)]) as modbus,
        OpcUaSimulator(
            [SimulatedMachine(load_opcua_model("process-chiller"), chiller)],
            clock=clock,
            port=free_port(),
            pki=tmp_path / "server",
            step_s=2,
        ) as opcua,
    ):
        yield Factory(chiller, modbus.port, opcua.url)


def site(tmp_path: Path, factory: Factory, *, mode: str = "active", limit_kw: float = 200) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(f"""
site: {{name: cold-store, park: test-park}}
summary: {{interval_s: 300, settle_s: 2}}
devices:
  - {{name: incomer, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1,
      port: {factory.meter_port}, poll_interval_s: 2}}
  - {{name: chiller, driver: opcua, model: process-chiller, endpoint: {factory.chiller_url},
      poll_interval_s: 2, security: {{policy: None, mode: None}}}}
control:
  mode: {mode}
  meter: incomer
  limit_kw: {limit_kw}
  cycle_s: 2
  loads:
    - name: chiller
      device: chiller
      rated_kw: 75
      sheddable: true
      min_on_s: 0
      min_off_s: 60
      max_off_s: 3000
      band: {{point: supply_temp_c, maximum: 12, margin: 1}}
""")
    return path


async def run_for(agent: Agent, clock: SimClock, seconds: float) -> None:
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        await agent.started.wait()
        await clock.advance(seconds)
        stop.set()


def site_summaries(outbox: MemoryOutbox) -> list[dict[str, Any]]:
    return [
        json.loads(m.payload)
        for m in outbox._messages.values()
        if m.topic.endswith("/cold-store/summary")
    ]


async def test_shed_by_the_limit_restored_by_the_process_band_safe_on_stop(
    tmp_path: Path, clock: SimClock, factory: Factory
) -> None:
    outbox = MemoryOutbox()
    agent = Agent(load_site(site(tmp_path, factory)), clock, outbox=outbox, publish=False)
    shed_seen = band_seen = False
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        await agent.started.wait()
        for _ in range(60):  # 20 minutes in 20-second steps
            await clock.advance(20)
            shed_seen |= factory.chiller.inputs["enable"] is False
            actions = agent.controller.last_actions if agent.controller else []
            band_seen |= any(a.binding == "process band" for a in actions)
        stop.set()
    assert shed_seen, "the limiter never shed the chiller"
    assert band_seen, "the chiller's supply temperature never brought it back"
    summaries = site_summaries(outbox)
    assert summaries, "no site summary stored"
    published = [a for s in summaries for a in s["control"]["actions"]]
    shed = next(a for a in published if a["kind"] == "shed")
    assert shed["binding"] == "demand limit"
    assert shed["written"] is True
    assert "projected" in shed["reason"]
    assert shed["limit_kw"] == 200
    loads = summaries[-1]["control"]["loads"]["chiller"]
    assert loads["on_s"] + loads["shed_s"] > 0


async def test_stopping_returns_a_shed_load_to_its_safe_state(
    tmp_path: Path, clock: SimClock, factory: Factory
) -> None:
    agent = Agent(load_site(site(tmp_path, factory)), clock, outbox=MemoryOutbox(), publish=False)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        await agent.started.wait()
        while agent.controller is not None and agent.controller.guard.states["chiller"].on:
            await clock.advance(2)
        await clock.advance(4)  # the simulator takes the write at its next step
        assert factory.chiller.inputs["enable"] is False
        stop.set()
    await clock.advance(4)  # the simulator's next step takes what the agent wrote on stop
    assert factory.chiller.inputs["enable"] is True


async def test_advisory_mode_decides_but_never_writes(
    tmp_path: Path, clock: SimClock, factory: Factory
) -> None:
    outbox = MemoryOutbox()
    agent = Agent(
        load_site(site(tmp_path, factory, mode="advisory")), clock, outbox=outbox, publish=False
    )
    await run_for(agent, clock, 310)
    assert factory.chiller.inputs["enable"] is True
    [summary] = site_summaries(outbox)
    actions = summary["control"]["actions"]
    assert summary["control"]["mode"] == "advisory"
    assert any(a["kind"] == "shed" and a["written"] is False for a in actions)


async def test_a_demand_response_request_is_answered_held_and_reported(
    tmp_path: Path, clock: SimClock, factory: Factory, broker: MosquittoBroker
) -> None:
    """The park asks for 150 kW from in 5 minutes: the answer says whether the site can,
    from what it can shed now; during the event the limit in force is the event's."""
    path = site(tmp_path, factory, limit_kw=400)
    path.write_text(
        path.read_text().replace(
            "summary:", f"broker: {{host: 127.0.0.1, port: {broker.port}}}\nsummary:"
        )
    )
    agent = Agent(load_site(path), clock)
    base = "energy/v1/test-park/cold-store"
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        async with asyncio.timeout(10):
            await agent.publisher.ready.wait()
        await clock.advance(30)  # a few cycles: the demand is known
        async with aiomqtt.Client("127.0.0.1", broker.port) as park:
            await park.subscribe(f"{base}/command-responses", qos=1)
            await park.subscribe(f"{base}/summary", qos=1)
            request = {
                "type": "demand_response",
                "id": "dr-1",
                "site": "cold-store",
                "limit_kw": 150,
                "start": (clock.now() + timedelta(minutes=5)).isoformat(),
                "duration_s": 1800,
            }
            await park.publish(f"{base}/commands/demand_response", json.dumps(request), qos=1)
            [answer] = await receive(park, 1)
            await clock.advance(900)
            summaries = await receive(park, 2)
        stop.set()
    assert answer["status"] == "accepted"
    assert answer["can_comply"] is False  # 180 kW of base load alone is over 150 kW
    assert "can be shed for the event's length" in answer["detail"]
    during = summaries[-1]["control"]
    assert during["limit_kw"] == 150
    assert during["limit_source"] == "demand response dr-1"
    assert during["demand_response"][0]["id"] == "dr-1"
    assert during["demand_response"][0]["baseline_kw"] is not None


async def test_an_override_off_switches_the_chiller_off_and_hands_it_back_at_expiry(
    tmp_path: Path, clock: SimClock, factory: Factory
) -> None:
    """With the limit far above the plant, nothing but the park's override acts: it turns
    the running chiller off within a control cycle, holds it, and at expiry the chiller is
    back on under the controller, every step an explained action."""
    agent = Agent(
        load_site(site(tmp_path, factory, limit_kw=5000)),
        clock,
        outbox=MemoryOutbox(),
        publish=False,
    )
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        await agent.started.wait()
        await clock.advance(10)
        assert factory.chiller.inputs["enable"] is True
        until = clock.now() + timedelta(seconds=120)
        command = {
            "type": "override",
            "id": "ov-7",
            "site": "cold-store",
            "device": "chiller",
            "state": "off",
            "until": until.isoformat(),
        }
        answer = agent.commands.handle(json.dumps(command).encode(), clock.now(), "override")
        assert answer is not None
        assert answer.status == "accepted"
        assert answer.detail is not None
        assert "holds chiller off" in answer.detail
        await clock.advance(2 + 2)  # one control cycle, and the simulator's next step
        assert factory.chiller.inputs["enable"] is False
        assert agent.controller is not None
        state = agent.controller.guard.states["chiller"]
        assert (state.on, state.held_by) == (False, "override")
        await clock.advance(60)
        assert factory.chiller.inputs["enable"] is False  # held, not restored by the limiter
        await clock.advance(120 - 64 + 2 + 2)
        assert factory.chiller.inputs["enable"] is True
        assert (state.on, state.held_by) == (True, None)
        kinds = [(a.kind, a.binding) for a in agent.controller.history if a.load == "chiller"]
        assert kinds == [("override", "override"), ("restore", "override")]
        stop.set()


class _Watcher:
    """An OPC UA client of its own on the chiller's command point: what the device saw
    written, not what the agent says it wrote."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def datachange_notification(self, node: object, value: object, data: object) -> None:
        self.values.append(value)


async def test_every_bad_command_is_refused_in_the_log_and_nothing_is_written(
    tmp_path: Path,
    clock: SimClock,
    factory: Factory,
    broker: MosquittoBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The corpus of bad commands, through a real Mosquitto, to an agent in active mode
    with a live OPC UA chiller: each is answered `rejected` with its own reason, each
    rejection is in the log, and the chiller's enable point, watched by an independent
    OPC UA subscription, never changes."""
    path = site(tmp_path, factory, limit_kw=5000)  # nothing to shed: only commands could act
    path.write_text(
        path.read_text().replace(
            "summary:", f"broker: {{host: 127.0.0.1, port: {broker.port}}}\nsummary:"
        )
    )
    agent = Agent(load_site(path), clock, outbox=MemoryOutbox())
    base = "energy/v1/test-park/cold-store"
    watcher = _Watcher()
    caplog.set_level(logging.INFO, logger="edge_agent.northbound.commands")
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        async with asyncio.timeout(10):
            await agent.publisher.ready.wait()
        await clock.advance(10)
        async with Client(factory.chiller_url) as opcua:
            subscription = await opcua.create_subscription(50, watcher)
            await subscription.subscribe_data_change(opcua.get_node("ns=2;s=Chiller.Enable"))
            async with aiomqtt.Client("127.0.0.1", broker.port) as park:
                await park.subscribe(f"{base}/command-responses", qos=1)
                for _, topic, payload, _ in BAD:
                    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                    await park.publish(f"{base}/commands/{topic}", body, qos=1)
                answers = await receive(park, len(BAD), timeout_s=20)
                await clock.advance(10)  # control cycles: had anything got in, it would act
            await subscription.delete()
        stop.set()
    for (case, _, _, reason), answer in zip(BAD, answers, strict=True):
        assert answer["status"] == "rejected", case
        assert reason in answer["reason"], (case, answer["reason"])
    assert watcher.values == [True], "the chiller's enable point was written"
    assert factory.chiller.inputs["enable"] is True
    assert agent.controller is not None
    assert list(agent.controller.history) == []
    rejected = [r.getMessage() for r in caplog.records if " rejected: " in r.getMessage()]
    assert len(rejected) == len(BAD)
