"""One simulated day of a park under one kind of control, on one SimClock.

`run_protocols` is the bench proper: meters on Modbus TCP, machines on OPC UA, the agents'
summaries and commands through Mosquitto, the scenario's events applied at their moments.
`run_direct` runs the same plant models and the same agent code with the plant read and
written in-process: for the baselines of the score, and for the agent itself with
`simulate --in-process`; its events are recorded as the protocol run records them, and
events that only concern the network (a broker outage) do not apply there. Both record the
plant's ground truth for scoring.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.northbound.outbox import MemoryOutbox
from edge_agent.northbound.topics import Topics

from .broker import MosquittoBroker
from .equipment import Machine
from .events import (
    DemandResponseEvent,
    DeviceFailureEvent,
    DeviceOutage,
    ParkEvents,
    Step,
    answer_record,
    demand_response_command,
    demand_response_record,
    demand_response_start,
    timeline,
)
from .factory import Plant, build_plant, connect_direct, direct_plant, serve_plant
from .load_policies import Mode
from .park_link import ParkLink
from .ports import free_port
from .scenario import Scenario
from .scoring import FactoryRecord, Recorder
from .site import site_config

__all__ = ["DirectEvents", "Run", "direct_day", "run_direct", "run_protocols"]

WINDOW_S = 900
"""The billing window the day is scored in (EVN's 15 minutes)."""


@dataclass
class Run:
    mode: Mode
    transport: str
    plants: dict[str, Plant]
    records: dict[str, FactoryRecord]
    agents: dict[str, Agent]
    """Empty for a run made in another process (agents do not travel)."""
    wall_s: float
    machines: dict[str, dict[str, Machine]] = field(default_factory=dict)
    """Each factory's machine models as the day left them (for the hindsight bound)."""
    summaries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    site_summaries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    delivery: dict[str, int] = field(default_factory=dict)


def _day(
    scenario: Scenario,
) -> tuple[SimClock, datetime, datetime, list[Step], dict[str, Plant], Recorder]:
    """The day's clock, its end, when to stop (the last interval is summarised a settle
    time after the end), its event steps, the plant models and their recorder."""
    clock = SimClock(scenario.start)
    end = scenario.start + timedelta(hours=scenario.duration_h)
    closing = end + timedelta(seconds=scenario.poll_interval_s + 1)
    steps = timeline(scenario.events, start=scenario.start, end=end, zone=scenario.timezone)
    plants = {f.name: build_plant(scenario, i, f, clock) for i, f in enumerate(scenario.factories)}
    recorder = Recorder(
        clock,
        WINDOW_S,
        {n: (p.meter.import_energy_kwh, p.machines) for n, p in plants.items()},
        {f.name: f.limit_kw for f in scenario.factories},
    )
    return clock, end, closing, steps, plants, recorder


def _close(run: Run) -> Run:
    run.machines = {name: plant.machines for name, plant in run.plants.items()}
    for name, agent in run.agents.items():
        if agent.controller is not None:
            run.records[name].actions = [
                {
                    "at": a.at.isoformat(),
                    "load": a.load,
                    "on": a.on,
                    "binding": a.binding,
                    "kind": a.kind,
                    "written": a.written,
                }
                for a in agent.controller.history
            ]
    return run


async def run_protocols(
    scenario: Scenario,
    mode: Mode,
    *,
    progress: Callable[[float], None] | None = None,
) -> Run:
    started = time.monotonic()
    clock, end, closing, steps, plants, recorder = _day(scenario)
    with tempfile.TemporaryDirectory(prefix="edge-agent-bench-") as tmp:
        work = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            broker = await stack.enter_async_context(MosquittoBroker(free_port()))
            agents: dict[str, Agent] = {}
            outages: dict[tuple[str, str], DeviceOutage] = {}
            for factory in scenario.factories:
                plant = await stack.enter_async_context(
                    serve_plant(plants[factory.name], clock, work, step_s=scenario.poll_interval_s)
                )
                outages.update({(factory.name, n): o for n, o in plant.outages.items()})
                config = site_config(
                    scenario, factory, plant, broker_port=broker.port, work=work, mode=mode
                )
                agents[factory.name] = Agent(config, clock, seed=scenario.seed)
            link = await stack.enter_async_context(
                ParkLink(
                    broker.port,
                    [
                        Topics(a.config.broker.topic_prefix, scenario.park, name)
                        for name, a in agents.items()
                    ],
                )
            )
            events = ParkEvents(
                zone=scenario.timezone, broker=broker, link=link, agents=agents, outages=outages
            )

            async def delivered() -> None:  # the last ones may still be on their way
                await link.arrived(sum(a.publisher.stats.published for a in agents.values()))

            await _through_the_day(
                scenario,
                (clock, end, closing, steps, recorder),
                agents,
                events.apply,
                progress=progress,
                connected=True,
                after=delivered,
            )
    return _close(
        Run(
            mode,
            "protocols",
            plants,
            recorder.records,
            agents,
            time.monotonic() - started,
            summaries=link.summaries,
            site_summaries=link.site_summaries,
            events=events.records,
            delivery={
                "summaries_received": sum(len(r) for r in link.summaries.values())
                + sum(len(r) for r in link.site_summaries.values()),
                "repeats": link.duplicates,
                "left_in_outboxes": sum(a.outbox.depth() for a in agents.values()),
            },
        )
    )


def direct_day(scenario_json: str, mode: Mode) -> Run:
    """`run_direct` in a process of its own (a baseline beside the main run, on the other
    core): what it returns is the part of a `Run` that travels, records and machines."""
    run = asyncio.run(run_direct(Scenario.model_validate_json(scenario_json), mode))
    run.plants, run.agents = {}, {}
    return run


async def run_direct(
    scenario: Scenario, mode: Mode, *, progress: Callable[[float], None] | None = None
) -> Run:
    """The same day with the plant in-process: no sockets, the same agent code. The agents'
    summaries stay in their outboxes (no broker) and are read from there at the end."""
    started = time.monotonic()
    clock, end, closing, steps, plants, recorder = _day(scenario)
    agents: dict[str, Agent] = {}
    with tempfile.TemporaryDirectory(prefix="edge-agent-bench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            for factory in scenario.factories:
                plant = await stack.enter_async_context(
                    direct_plant(plants[factory.name], clock, step_s=scenario.poll_interval_s)
                )
                config = site_config(
                    scenario, factory, plant, broker_port=1, work=Path(tmp), mode=mode
                )
                agents[factory.name] = Agent(
                    config,
                    clock,
                    outbox=MemoryOutbox(),
                    publish=False,
                    connect=connect_direct(plant, clock),
                    seed=scenario.seed,
                )
            events = DirectEvents(zone=scenario.timezone, plants=plants, agents=agents)
            await _through_the_day(
                scenario,
                (clock, end, closing, steps, recorder),
                agents,
                events.apply,
                progress=progress,
            )
    summaries, site_summaries = await _kept_summaries(agents)
    return _close(
        Run(
            mode,
            "in-process",
            plants,
            recorder.records,
            agents,
            time.monotonic() - started,
            summaries=summaries,
            site_summaries=site_summaries,
            events=events.records,
            delivery={"summaries_kept": sum(a.outbox.depth() for a in agents.values())},
        )
    )


async def _kept_summaries(
    agents: dict[str, Agent],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """Each agent's device and site summaries as a broker would have passed them on, read
    from its outbox (left in it)."""
    devices: dict[str, list[dict[str, Any]]] = {}
    sites: dict[str, list[dict[str, Any]]] = {}
    for name, agent in agents.items():
        depth = agent.outbox.depth()
        documents = [json.loads(m.payload) for m in await agent.outbox.take(depth)] if depth else []
        devices[name] = [d for d in documents if "device" in d]
        sites[name] = [d for d in documents if "device" not in d]
    return devices, sites


class DirectEvents:
    """A scenario's events on an in-process park, recorded as `ParkEvents` records them:
    a demand response is handed to the agent's command handler and its answer kept; a
    device failure silences the device; a broker outage, with no broker, changes nothing
    (its record says so)."""

    def __init__(self, *, zone: str, plants: dict[str, Plant], agents: dict[str, Agent]) -> None:
        self._zone = ZoneInfo(zone)
        self._plants = plants
        self._agents = agents
        self._records: dict[int, dict[str, Any]] = {}

    @property
    def records(self) -> list[dict[str, Any]]:
        return [self._records[i] for i in sorted(self._records)]

    async def apply(self, step: Step) -> None:
        event, local = step.event, step.when.astimezone(self._zone).isoformat()
        if isinstance(event, DemandResponseEvent):
            self._records[step.index] = self._demand_response(event, step.when)
        elif isinstance(event, DeviceFailureEvent):
            outage = self._plants[event.factory].outages[event.device]
            if step.phase == "begin":
                await outage.begin()
                self._records[step.index] = {
                    "kind": event.kind,
                    "factory": event.factory,
                    "device": event.device,
                    "from": local,
                }
            else:
                await outage.end()
                self._records[step.index]["until"] = local
        elif step.phase == "begin":
            self._records[step.index] = {
                "kind": event.kind,
                "from": local,
                "in_process": "no broker: the agents noticed nothing",
            }
        else:
            self._records[step.index]["until"] = local

    def _demand_response(self, event: DemandResponseEvent, now: datetime) -> dict[str, Any]:
        start = demand_response_start(event, now, self._zone)
        record = demand_response_record(event, now, start, self._zone)
        for site in list(self._agents) if event.factory == "all" else [event.factory]:
            command = demand_response_command(event, site, start)
            answer = self._agents[site].commands.handle(json.dumps(command).encode(), now)
            record["responses"][site] = (
                {"status": "no answer", "reason": "the command was not for this site"}
                if answer is None
                else answer_record(answer.model_dump(mode="json", by_alias=True), self._zone)
            )
        return record


async def _through_the_day(
    scenario: Scenario,
    day: tuple[SimClock, datetime, datetime, list[Step], Recorder],
    agents: dict[str, Agent],
    apply: Callable[[Step], Any],
    *,
    progress: Callable[[float], None] | None,
    connected: bool = False,
    after: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """The agents and the recorder through the day, the events applied at their moments;
    every agent stopped (its outbox drained) before the recorder is; `connected` waits for
    each agent's broker session first, so that a command at the start is heard."""
    clock, end, closing, steps, recorder = day
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        recording = group.create_task(recorder.run(end), name="recorder")
        clock.track(recording)
        for agent in agents.values():
            group.create_task(agent.run(stop))
        for agent in agents.values():
            await agent.started.wait()
            if connected:
                async with asyncio.timeout(30):
                    await agent.publisher.ready.wait()
        await _advance(scenario, clock, closing, steps, apply, progress=progress)
        stop.set()
        for agent in agents.values():  # each drains its outbox before it stops
            await agent.stopped.wait()
        if after is not None:
            await after()
        recording.cancel()


async def _advance(
    scenario: Scenario,
    clock: SimClock,
    closing: datetime,
    steps: list[Step],
    apply: Callable[[Step], Any],
    *,
    progress: Callable[[float], None] | None,
) -> None:
    """Move the clock on the summary grid, stopping exactly at each event's moment."""
    step = timedelta(seconds=scenario.summary_interval_s)
    while clock.now() < closing:
        target = min(closing, scenario.start + step * ((clock.now() - scenario.start) // step + 1))
        if steps and steps[0].when <= target:
            target = steps[0].when
        await clock.advance_to(target)
        while steps and steps[0].when <= clock.now():
            await apply(steps.pop(0))
        if progress:
            progress((clock.now() - scenario.start) / (closing - scenario.start))
