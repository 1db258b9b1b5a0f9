"""One simulated day of a park under one kind of control, on one SimClock.

`run_protocols` is the bench proper: meters on Modbus TCP, machines on OPC UA, the agents'
summaries and commands through Mosquitto, the scenario's events applied at their moments.
`run_direct` runs the same plant models and the same agent code with the plant read and
written in-process, for the baselines of the score; events that only concern the network
(a broker outage) do not apply there. Both record the plant's ground truth for scoring.
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
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.northbound.outbox import MemoryOutbox
from edge_agent.northbound.topics import Topics

from .broker import MosquittoBroker
from .equipment import Machine
from .events import (
    BrokerOutageEvent,
    DemandResponseEvent,
    DeviceFailureEvent,
    DeviceOutage,
    ParkEvents,
    Step,
    demand_response_command,
    demand_response_start,
    timeline,
)
from .factory import Plant, build_plant, connect_direct, direct_plant, serve_plant
from .load_policies import Mode
from .park_link import ParkLink
from .ports import free_port
from .scoring import FactoryRecord, Recorder

if TYPE_CHECKING:
    from .park import Scenario

__all__ = ["Run", "direct_day", "run_direct", "run_protocols"]

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
    from .park import site_config

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
    from .park import Scenario

    run = asyncio.run(run_direct(Scenario.model_validate_json(scenario_json), mode))
    run.plants, run.agents = {}, {}
    return run


async def run_direct(scenario: Scenario, mode: Mode) -> Run:
    """The same day with the plant in-process: no sockets, the same agent code."""
    from .park import site_config

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

            async def apply(step: Step) -> None:
                await _apply_direct(step, plants, agents, clock.now(), scenario.timezone)

            await _through_the_day(
                scenario, (clock, end, closing, steps, recorder), agents, apply, progress=None
            )
    return _close(
        Run(mode, "in-process", plants, recorder.records, agents, time.monotonic() - started)
    )


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


async def _apply_direct(
    step: Step, plants: dict[str, Plant], agents: dict[str, Agent], now: datetime, zone: str
) -> None:
    event = step.event
    if isinstance(event, DeviceFailureEvent):
        outage = plants[event.factory].outages[event.device]
        await (outage.begin() if step.phase == "begin" else outage.end())
    elif isinstance(event, DemandResponseEvent):
        start = demand_response_start(event, now, ZoneInfo(zone))
        sites = list(agents) if event.factory == "all" else [event.factory]
        for site in sites:
            command = demand_response_command(event, site, start)
            agents[site].commands.handle(json.dumps(command).encode(), now)
    else:
        assert isinstance(event, BrokerOutageEvent)  # nothing to do without a broker
