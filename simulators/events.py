"""Scenario events: what happens to a park during a simulated day, and when.

An event's `at` (and a demand-response's `start`) is a local wall-clock time, "HH:MM" or
"HH:MM:SS", in the scenario's timezone: the first such moment at or after the scenario's
start (in a day that starts at 08:00, "02:00" is the next morning). Local time, because that
is how a park's operator plans: "the request goes out at 16:30 for 17:00 to 18:00". An event
that would begin after the scenario's end does not happen; whatever an event breaks is
mended by the end at the latest, so that every agent can hand over what it kept.

`simulate()` advances the one SimClock to each event's moment exactly, then applies it with
`ParkEvents.apply`: a demand response goes out as a real command over MQTT and the agent's
answer is recorded; a device failure silences a Modbus unit or stops an OPC UA server; a
broker outage stops Mosquitto and starts it again on the same port.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, Self
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, PositiveFloat, model_validator

from edge_agent.config.base import Name, StrictModel
from edge_agent.config.loader import Problem, did_you_mean, problem_at
from edge_agent.config.located import Located

from .faults import Fault

if TYPE_CHECKING:
    from edge_agent.agent import Agent

    from .broker import MosquittoBroker
    from .modbus_server import ModbusSimulator
    from .opcua_server import OpcUaSimulator
    from .park_link import ParkLink

__all__ = [
    "BrokerOutageEvent",
    "DemandResponseEvent",
    "DeviceFailureEvent",
    "DeviceOutage",
    "Event",
    "MeterSilence",
    "OpcUaServerDown",
    "ParkEvents",
    "Step",
    "answer_record",
    "check_events",
    "demand_response_command",
    "demand_response_record",
    "demand_response_start",
    "timeline",
]

_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?")
ANSWER_TIMEOUT_S = 10.0
"""Real seconds to wait for an agent's answer to a command; loopback answers take ms."""


def _local_time(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and _TIME.fullmatch(value):
        return time.fromisoformat(value)
    raise ValueError(
        f'expected a local time "HH:MM" or "HH:MM:SS", 00:00 to 23:59:59; found {value!r}'
    )


LocalTime = Annotated[time, BeforeValidator(_local_time)]


class _Event(StrictModel):
    at: LocalTime
    """When it happens: local time in the scenario's timezone, "HH:MM" or "HH:MM:SS", the
    first such moment at or after the scenario's start."""


class DemandResponseEvent(_Event):
    """The park asks a factory (or every factory) to hold its demand under `limit_kw`, or to
    cut it by `reduction_kw`, from `start` for `duration_min`. It goes out at `at` as the
    command an operator's system sends; the agent's answer goes into the metrics."""

    kind: Literal["demand_response"]
    id: str = Field(min_length=1, max_length=100)
    """The command's id; the agent's answer carries it back."""
    factory: Name = "all"
    """A factory of the scenario, or `all` for every one."""
    start: LocalTime | None = None
    """When the limit begins, local time, the first such moment at or after `at`; `at`
    when left out."""
    duration_min: float = Field(ge=1, le=1440)
    limit_kw: PositiveFloat | None = None
    reduction_kw: PositiveFloat | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.limit_kw is None) == (self.reduction_kw is None):
            raise ValueError("give exactly one of limit_kw and reduction_kw")
        return self


class DeviceFailureEvent(_Event):
    """A device stops answering for `duration_min`: the incomer meter (Modbus: requests
    are never answered) or a machine (OPC UA: its server goes away, sessions and all)."""

    kind: Literal["device_failure"]
    factory: Name
    device: Name
    """`incomer` (the factory's meter) or the name of one of its machines."""
    duration_min: PositiveFloat


class BrokerOutageEvent(_Event):
    """The park's broker goes down for `duration_min` and comes back on the same port,
    without the sessions or messages it held (it runs without persistence)."""

    kind: Literal["broker_outage"]
    duration_min: PositiveFloat


Event = Annotated[
    DemandResponseEvent | DeviceFailureEvent | BrokerOutageEvent, Field(discriminator="kind")
]


def check_events(doc: Located) -> list[Problem]:
    """Every event's factory and device must exist in the scenario; each wrong name is
    reported where it is written, with the names that would do."""
    factories = doc.data.get("factories")
    devices: dict[str, list[str]] = {}
    for factory in factories if isinstance(factories, list) else []:
        if isinstance(factory, dict) and isinstance(factory.get("name"), str):
            machines = factory.get("machines")
            devices[factory["name"]] = ["incomer"] + [
                m["name"]
                for m in (machines if isinstance(machines, list) else [])
                if isinstance(m, dict) and isinstance(m.get("name"), str)
            ]
    events = doc.data.get("events")
    problems = []
    for index, event in enumerate(events if isinstance(events, list) else []):
        if not isinstance(event, dict):
            continue
        factory = event.get("factory")
        if not isinstance(factory, str):
            continue
        allowed = [*devices, "all"] if event.get("kind") == "demand_response" else list(devices)
        if factory not in allowed:
            problems.append(
                problem_at(
                    doc,
                    ("events", index, "factory"),
                    f"no factory named {factory!r}; expected one of: {', '.join(allowed)}"
                    f"{did_you_mean(factory, allowed)}",
                )
            )
            continue
        device = event.get("device")
        if isinstance(device, str) and factory in devices and device not in devices[factory]:
            known = devices[factory]
            problems.append(
                problem_at(
                    doc,
                    ("events", index, "device"),
                    f"{factory} has no device named {device!r}; expected one of: "
                    f"{', '.join(known)}{did_you_mean(device, known)}",
                )
            )
    return problems


@dataclass(frozen=True, slots=True)
class Step:
    """One thing to do at one simulated moment: an event begins, or its effect ends."""

    when: datetime
    index: int
    """The event's place in the scenario's list: the order of steps at the same moment."""
    event: DemandResponseEvent | DeviceFailureEvent | BrokerOutageEvent
    phase: Literal["begin", "end"]


def _resolve(at: time, after: datetime, zone: ZoneInfo) -> datetime:
    """The first moment at or after `after` whose local time of day is `at`."""
    local = after.astimezone(zone)
    moment = datetime.combine(local.date(), at, zone)
    return moment if moment >= local else datetime.combine(local.date() + timedelta(1), at, zone)


def timeline(
    events: list[DemandResponseEvent | DeviceFailureEvent | BrokerOutageEvent],
    *,
    start: datetime,
    end: datetime,
    zone: str,
) -> list[Step]:
    """The steps of the events that begin before `end`, in time order; an effect that
    would outlast `end` ends at `end`."""
    tz = ZoneInfo(zone)
    steps = []
    for index, event in enumerate(events):
        when = _resolve(event.at, start, tz)
        if when >= end:
            continue
        steps.append(Step(when, index, event, "begin"))
        if not isinstance(event, DemandResponseEvent):
            until = min(end, when + timedelta(minutes=event.duration_min))
            steps.append(Step(until, index, event, "end"))
    return sorted(steps, key=lambda s: (s.when, s.index, s.phase == "begin"))


class DeviceOutage(Protocol):
    """A device that can be made to stop answering, and to answer again."""

    async def begin(self) -> None: ...

    async def end(self) -> None: ...


@dataclass(slots=True)
class MeterSilence:
    """A Modbus unit that never answers (the simulator's `no_answer` fault), as a meter
    that lost its supply; afterwards the server drops the connections the agent had, whose
    held requests would otherwise never be answered."""

    server: ModbusSimulator
    unit_id: int

    async def begin(self) -> None:
        self.server.unit(self.unit_id).fault = Fault.no_answer()

    async def end(self) -> None:
        self.server.unit(self.unit_id).fault = None
        self.server.drop_connections()


@dataclass(slots=True)
class OpcUaServerDown:
    """An OPC UA server that goes away, as a machine's PLC that is switched off, and comes
    back on the same port with the machine's state kept."""

    server: OpcUaSimulator

    async def begin(self) -> None:
        await self.server._stop()  # its own stop: the machines go on stepping meanwhile

    async def end(self) -> None:
        await self.server._start()


def demand_response_command(
    event: DemandResponseEvent, site: str, start: datetime
) -> dict[str, Any]:
    """The command the park's side sends a site for `event`, as JSON would carry it."""
    target = (
        {"limit_kw": event.limit_kw}
        if event.limit_kw is not None
        else {"reduction_kw": event.reduction_kw}
    )
    return {
        "type": "demand_response",
        "id": event.id,
        "site": site,
        "start": start.isoformat(),
        "duration_s": round(event.duration_min * 60),
        **target,
    }


def demand_response_start(event: DemandResponseEvent, now: datetime, zone: ZoneInfo) -> datetime:
    """When the event's request takes effect: its `start`, the first such moment from now."""
    return _resolve(event.start, now, zone) if event.start is not None else now


def demand_response_record(
    event: DemandResponseEvent, now: datetime, start: datetime, zone: ZoneInfo
) -> dict[str, Any]:
    """What the metrics keep of a demand-response request sent at `now` for `start`, in
    local time; `responses` is filled in per site with `answer_record`."""
    target = (
        {"limit_kw": event.limit_kw}
        if event.limit_kw is not None
        else {"reduction_kw": event.reduction_kw}
    )
    return {
        "kind": event.kind,
        "id": event.id,
        "factory": event.factory,
        "at": now.astimezone(zone).isoformat(),
        "start": start.astimezone(zone).isoformat(),
        "end": (start + timedelta(minutes=event.duration_min)).astimezone(zone).isoformat(),
        **target,
        "responses": {},
    }


def answer_record(answer: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """An agent's command response (the JSON it publishes) as the metrics keep it: the
    answer, and for a demand response whether it can comply, the flexibility it counted
    (kW) and its detail; the same from the broker and in-process."""
    return {
        "status": answer["status"],
        "reason": answer.get("reason"),
        "at": datetime.fromisoformat(str(answer["at"])).astimezone(zone).isoformat(),
        "can_comply": answer.get("can_comply"),
        "flexibility_kw": answer.get("flexibility_kw"),
        "detail": answer.get("detail"),
    }


class ParkEvents:
    """Applies the steps of a scenario's events to a running park, and records what
    happened for the metrics: one record per event, in the scenario's order."""

    def __init__(
        self,
        *,
        zone: str,
        broker: MosquittoBroker,
        link: ParkLink,
        agents: dict[str, Agent],
        outages: dict[tuple[str, str], DeviceOutage],
    ) -> None:
        self._zone = ZoneInfo(zone)
        self._broker = broker
        self._link = link
        self._agents = agents
        self._outages = outages
        self._broker_down = False
        self._records: dict[int, dict[str, Any]] = {}

    @property
    def records(self) -> list[dict[str, Any]]:
        return [self._records[i] for i in sorted(self._records)]

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self._zone).isoformat()

    async def apply(self, step: Step) -> None:
        event = step.event
        match event:
            case DemandResponseEvent():
                self._records[step.index] = await self._demand_response(event, step.when)
            case DeviceFailureEvent() if step.phase == "begin":
                await self._outages[(event.factory, event.device)].begin()
                self._records[step.index] = {
                    "kind": event.kind,
                    "factory": event.factory,
                    "device": event.device,
                    "from": self._local(step.when),
                }
            case DeviceFailureEvent():
                await self._outages[(event.factory, event.device)].end()
                self._records[step.index]["until"] = self._local(step.when)
            case BrokerOutageEvent() if step.phase == "begin":
                await self._broker_down_at(step)
            case BrokerOutageEvent():
                await self._broker.start()
                await self._link.connect()
                self._broker_down = False
                self._records[step.index].update(
                    until=self._local(step.when),
                    waiting_when_back=sum(a.outbox.depth() for a in self._agents.values()),
                )

    async def _broker_down_at(self, step: Step) -> None:
        # The outage falls between deliveries: a broker without persistence loses what it
        # acknowledged and had not yet passed on, which is the broker's loss, not the agents'.
        await self._link.settle(list(self._agents.values()))
        await self._broker.stop()
        await self._link.disconnect()
        self._broker_down = True
        self._records[step.index] = {"kind": "broker_outage", "from": self._local(step.when)}

    async def _demand_response(self, event: DemandResponseEvent, now: datetime) -> dict[str, Any]:
        start = demand_response_start(event, now, self._zone)
        record = demand_response_record(event, now, start, self._zone)
        for site in list(self._agents) if event.factory == "all" else [event.factory]:
            command = demand_response_command(event, site, start)
            record["responses"][site] = await self._send(site, command)
        return record

    async def _send(self, site: str, command: dict[str, Any]) -> dict[str, Any]:
        if self._broker_down:
            return {"status": "not sent", "reason": "the park's broker is down"}
        await self._link.send(site, command)
        if not self._agents[site].publisher.ready.is_set():
            # It has no session to receive the command on; it reconnects on its own backoff.
            return {"status": "no answer", "reason": "the agent is not connected"}
        try:
            answer = await asyncio.wait_for(
                self._link.response(site, command["id"]), ANSWER_TIMEOUT_S
            )
        except TimeoutError:
            return {"status": "no answer", "reason": f"none within {ANSWER_TIMEOUT_S:g} s"}
        return answer_record(answer, self._zone)
