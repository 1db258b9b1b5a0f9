"""Scenario events on a real park: a demand-response request answered over MQTT, a meter
and a machine that go silent, and a broker outage after which every summary still arrives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.opcua.driver import OpcUaDriver
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_opcua_model
from simulators.equipment import Furnace
from simulators.events import OpcUaServerDown
from simulators.opcua_server import OpcUaSimulator, SimulatedMachine, served_map
from simulators.park import simulate
from simulators.ports import free_port
from simulators.scenario import Scenario

DR_1 = {
    "at": "17:05",
    "kind": "demand_response",
    "id": "dr-1",
    "factory": "press-shop",
    "start": "17:10",
    "duration_min": 30,
    "limit_kw": 250,
}

HOUR = {
    "name": "outage-hour",
    "park": "binh-duong-1",
    "start": "2026-03-02T17:00:00+07:00",
    "duration_h": 1,
    "seed": 3,
    "poll_interval_s": 10,
    "summary_interval_s": 300,
    "factories": [
        {
            "name": "press-shop",
            "base_load_kw": 180,
            "machines": [{"name": "furnace-1", "model": "electric-furnace"}],
        }
    ],
    "events": [
        DR_1,
        {
            "at": "17:06",
            "kind": "demand_response",
            "id": "dr-2",
            "duration_min": 30,
            "limit_kw": 2_000_000,
        },
        {
            "at": "17:08",
            "kind": "device_failure",
            "factory": "press-shop",
            "device": "incomer",
            "duration_min": 1,
        },
        {
            "at": "17:12",
            "kind": "device_failure",
            "factory": "press-shop",
            "device": "furnace-1",
            "duration_min": 1,
        },
        {"at": "17:20", "kind": "broker_outage", "duration_min": 10},
        {
            "at": "17:25",
            "kind": "demand_response",
            "id": "dr-3",
            "duration_min": 10,
            "reduction_kw": 20,
        },
    ],
}


async def test_events_happen_at_their_moments_and_no_summary_is_lost(tmp_path: Path) -> None:
    scenario = Scenario.model_validate(HOUR)
    metrics = await simulate(scenario, tmp_path)
    events = metrics["events"]
    accepted, rejected, during_outage = events[0], events[1], events[5]
    assert accepted["responses"] == {
        "press-shop": {
            "status": "accepted",
            "reason": None,
            "at": "2026-03-02T17:05:00+07:00",
            "can_comply": None,  # a factory without a limit has no control to assess with
            "flexibility_kw": None,
            "detail": None,
        }
    }
    assert (accepted["start"], accepted["end"]) == (
        "2026-03-02T17:10:00+07:00",
        "2026-03-02T17:40:00+07:00",
    )
    answer = rejected["responses"]["press-shop"]
    assert answer["status"] == "rejected"
    assert "limit_kw" in answer["reason"]
    assert during_outage["responses"]["press-shop"]["status"] == "not sent"
    assert events[2] == {
        "kind": "device_failure",
        "factory": "press-shop",
        "device": "incomer",
        "from": "2026-03-02T17:08:00+07:00",
        "until": "2026-03-02T17:09:00+07:00",
    }
    outage = events[4]
    assert (outage["from"], outage["until"]) == (
        "2026-03-02T17:20:00+07:00",
        "2026-03-02T17:30:00+07:00",
    )
    assert outage["waiting_when_back"] == 4  # two intervals closed while it was down, 2 devices
    # Zero loss: 12 intervals of two devices, each summary once, none left behind.
    factory = metrics["factories"]["press-shop"]
    assert factory["summaries"] == 12 * 2
    assert metrics["delivery"] == {
        "summaries_received": 24,
        "repeats": 0,
        "left_in_outboxes": 0,
    }
    assert factory["data_quality"] < 1.0, "the silent minutes show in the data quality"


async def test_a_plant_runs_on_while_its_plc_is_down(tmp_path: Path) -> None:
    """The PLC's network going away stops nobody's machines: their energy grows through
    the outage, as the in-process baselines' does, and the server shows it when back."""
    clock = SimClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    furnace = Furnace()
    device = served_map(load_opcua_model("electric-furnace"), "furnace-1")
    async with OpcUaSimulator(
        [SimulatedMachine(device, furnace)],
        clock=clock,
        port=free_port(),
        pki=tmp_path / "plc",
        step_s=10,
    ) as plc:
        await clock.advance(60)
        before = furnace.energy_kwh
        down = OpcUaServerDown(plc)
        await down.begin()
        minutes = 20
        await clock.advance(minutes * 60)
        during = furnace.energy_kwh - before
        await down.end()
        await clock.advance(10)
        connected = device.model_copy(update={"name": "furnace-1", "endpoint": plc.url})
        async with OpcUaDriver(connected, clock) as driver:
            (group,) = driver.poll_groups()
            readings = {r.point: r.value for r in await driver.read(group, clock.now())}
    assert plc.stats.steps == (60 + minutes * 60 + 10) // 10, "a step every 10 s, down or not"
    assert during > furnace.max_kw * 0.5 * minutes / 60, "heating at well over half power"
    assert readings["furnace-1/energy_kwh"] == pytest.approx(furnace.energy_kwh)


CONTROLLED = {
    **HOUR,
    "name": "dr-hour",
    "duration_h": 0.75,
    "factories": [
        {
            "name": "press-shop",
            "base_load_kw": 180,
            "limit_kw": 400,
            "machines": [
                {"name": "compressor-1", "model": "air-compressor"},
                {"name": "chiller-1", "model": "process-chiller"},
            ],
        }
    ],
    "events": [DR_1],
}


@pytest.mark.parametrize("in_process", [False, True], ids=["protocols", "in-process"])
async def test_a_demand_response_answer_and_delivery_are_recorded_in_both_paths(
    tmp_path: Path, *, in_process: bool
) -> None:
    """The agent's whole answer (can it comply, its flexibility, why) reaches the metrics
    whether it came over MQTT or from the command handler in-process; what it delivered is
    the ground truth's average over the event's window, no control less the agent."""
    scenario = Scenario.model_validate(CONTROLLED)
    metrics = await simulate(scenario, tmp_path, in_process=in_process)
    assert metrics["transport"] == ("in-process" if in_process else "protocols")
    answer = metrics["events"][0]["responses"]["press-shop"]
    assert answer["status"] == "accepted"
    assert isinstance(answer["can_comply"], bool)
    assert answer["flexibility_kw"] is not None
    assert answer["detail"]
    (outcome,) = metrics["demand_response"]
    assert outcome["asked"] == {
        "limit_kw": 250.0,
        "start": "2026-03-02T17:10:00+07:00",
        "end": "2026-03-02T17:40:00+07:00",
    }
    assert outcome["answer"] == answer
    truth = outcome["ground_truth"]
    assert truth["delivered_kw"] == pytest.approx(truth["none_kw"] - truth["agent_kw"], abs=0.11)
    assert outcome["shortfall_kw"] == pytest.approx(max(0.0, truth["agent_kw"] - 250), abs=0.11)
    assert outcome["claimed"] is not None, "the agent's site summaries speak of the event"
    series = (tmp_path / "series-press-shop.csv").read_text().splitlines()
    assert series[0].startswith("window_start,agent_kw,agent_vnd,none_kw,none_vnd,limiter_kw")
    assert series[1].startswith("2026-03-02T17:00:00+07:00,")
    assert len(series) == 1 + 3, "three windows in 45 minutes"
