"""Commands from the park: demand-response events, manual overrides, advisory mode.

Every command is validated before it changes anything. A malformed, unknown or out-of-range
command is answered `rejected` with the reason on the response topic and changes nothing; a
valid one is applied and answered `accepted`. A command addressed to another site is
ignored without an answer (it is that site's to answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from edge_agent.clock import Clock
from edge_agent.config.schema import SiteConfig

from .command_store import CommandStore, Stored
from .payloads import schema_required

__all__ = ["Command", "CommandResponse", "Commands", "ControlInputs"]

log = logging.getLogger(__name__)


_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
"""A command can shed a factory's loads, so it is read as strictly as a PLC reads its
registers: a number is a JSON number, a boolean a JSON boolean, never a string or the other
one (`"limit_kw": true` is not a 1 kW limit); NaN and the infinities are refused as what
they are; an unknown field is refused, not ignored."""

METER_WAIT_S = 30.0
"""How long a demand-response request waits for the incomer's first reading at a start."""

MAX_AHEAD = timedelta(days=7)
"""How far ahead a command may act: an event's start, an override's end."""


class _Command(BaseModel):
    model_config = _STRICT

    id: str = Field(min_length=1, max_length=100)
    """Chosen by the sender; the response carries it back."""
    site: str
    """The site the command is for; another site's command is ignored."""


class DemandResponse(_Command):
    """The park asks the site to hold its demand under a limit, or to cut it by an amount,
    for a while."""

    type: Literal["demand_response"]
    limit_kw: float | None = Field(default=None, gt=0, le=1_000_000)
    reduction_kw: float | None = Field(default=None, gt=0, le=1_000_000)
    start: AwareDatetime
    duration_s: int = Field(ge=60, le=86_400)

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.limit_kw is None) == (self.reduction_kw is None):
            raise ValueError("give exactly one of limit_kw and reduction_kw")
        return self


class Override(_Command):
    """Force a load on or off until `until`, whatever the optimiser would do."""

    type: Literal["override"]
    device: str
    state: Literal["on", "off"]
    until: AwareDatetime


class Advisory(_Command):
    """Advisory mode: the agent decides and reports but writes nothing."""

    type: Literal["advisory"]
    advisory: bool


AnyCommand = DemandResponse | Override | Advisory
Command = Annotated[AnyCommand, Field(discriminator="type")]
_COMMAND: TypeAdapter[AnyCommand] = TypeAdapter(Command)


class CommandResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=schema_required)

    schema_: Literal["edge-agent/command-response/1"] = Field(
        default="edge-agent/command-response/1", alias="schema"
    )
    id: str | None
    """The command's id; None when the command could not be read far enough to have one."""
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    at: datetime
    can_comply: bool | None = None
    """Demand response only: whether the flexibility the site has now covers the request."""
    flexibility_kw: float | None = None
    """Demand response only: what the site can shed now (sheddable loads that are running)."""
    detail: str | None = None


@dataclass
class ControlInputs:
    """What the park asked for, as the optimiser reads it."""

    advisory: bool = False
    demand_response: dict[str, DemandResponse] = field(default_factory=dict)
    overrides: dict[str, Override] = field(default_factory=dict)


Assessor = Callable[[DemandResponse, datetime], tuple[bool, float, str]]
"""(can comply, flexibility kW, detail) for a demand-response request: the controller's."""


class Commands:
    def __init__(self, config: SiteConfig, store: CommandStore | None = None) -> None:
        self._site = config.site.name
        self._loads: dict[str, list[str]] = {}
        """Device -> the loads on it: what an override can act on."""
        for load in config.control.loads if config.control is not None else []:
            self._loads.setdefault(load.device, []).append(load.name)
        self.inputs = ControlInputs()
        self.assess: Assessor | None = None
        self.meter_known: asyncio.Event | None = None
        """Set by the controller once the incomer has been read: a demand-response request
        is assessed on the site's demand, so one that comes before it (a retained command
        at a start) waits for it, at most METER_WAIT_S."""
        self._store = store or CommandStore(None)
        self._accepted: dict[str, tuple[AnyCommand, CommandResponse]] = {}
        """Id -> the accepted command still in force and its answer, in the order accepted:
        what the store keeps, and what a repeated command is answered with."""

    def restore(self, now: datetime) -> None:
        """At a start: the commands accepted before the restart that are still in force,
        applied again (an ended one is dropped), each said in the log."""
        for command_json, answer_json in self._store.load().commands:
            try:
                command = _COMMAND.validate_json(command_json)
                answer = CommandResponse.model_validate_json(answer_json)
            except ValidationError as exc:
                log.error("a stored command cannot be read again, dropped: %s", _reasons(exc))
                continue
            if _ended(command, now):
                continue
            self._apply(command)
            self._accepted[command.id] = (command, answer)
            log.warning(
                "command %s accepted at %s is in force again after the restart: %s",
                command.id,
                answer.at.isoformat(),
                command.model_dump_json(),
            )
        self._save(now)

    async def answer(
        self,
        payload: bytes,
        clock: Clock,
        topic_type: str | None = None,
        *,
        retained: bool = False,
    ) -> CommandResponse | None:
        """`handle`, once the site's demand is known if the command is a demand response
        (within METER_WAIT_S; after that it is assessed on what is known, and says so)."""
        known = self.meter_known
        demand_response = _loose(payload).get("type") == "demand_response"
        if known is not None and not known.is_set() and demand_response:
            async with asyncio.TaskGroup() as group:
                meter = group.create_task(known.wait())
                timer = group.create_task(clock.sleep(METER_WAIT_S))
                done, _ = await asyncio.wait((meter, timer), return_when=FIRST_COMPLETED)
                for task in (meter, timer):
                    task.cancel()
            if meter not in done:
                log.warning(
                    "the incomer has not been read within %.0f s: demand-response request "
                    "assessed without it",
                    METER_WAIT_S,
                )
        return self.handle(payload, clock.now(), topic_type, retained=retained)

    def handle(
        self,
        payload: bytes,
        now: datetime,
        topic_type: str | None = None,
        *,
        retained: bool = False,
    ) -> CommandResponse | None:
        """Validate and apply; the response to publish, or None for another site's command
        (or a retained one accepted already). `topic_type` is the last level of the topic
        it came on (`commands/<type>`), which must be the payload's type: a gateway's ACL
        may grant one command topic and not another, so a payload must not act as a type
        its topic does not carry."""
        try:
            command = _COMMAND.validate_json(payload)
        except ValidationError as exc:
            site = _site_of(payload)
            if site is not None and site != self._site:
                return None
            return self._reject(_id_of(payload), _reasons(exc), now)
        if command.site != self._site:
            return None
        if topic_type is not None and topic_type != command.type:
            return self._reject(
                command.id,
                f"a {command.type} command on the commands/{topic_type} topic: each type has "
                f"its own topic (commands/{command.type})",
                now,
            )
        known = self._accepted.get(command.id)
        if known is not None:
            if known[0] != command:
                return self._reject(
                    command.id, f"id {command.id!r} was already used for another command", now
                )
            if retained:
                # The broker hands a retained command to every new subscription: this one
                # was answered when it was accepted, before the restart.
                log.info(
                    "command %s (retained) is in force already: not answered again", command.id
                )
                return None
            # A repeated command: answered again, never applied twice.
            log.info("command %s repeated: answered again, not applied again", command.id)
            first = known[1]
            again = f"already accepted at {first.at.isoformat()}; not applied again"
            detail = again if first.detail is None else f"{first.detail} ({again})"
            return first.model_copy(update={"at": now, "detail": detail})
        problem = self._check(command, now)
        if problem is not None:
            return self._reject(command.id, problem, now)
        self._apply(command)
        log.info("command %s accepted: %s", command.id, command.model_dump_json())
        response = self._answer(command, now)
        self._accepted[command.id] = (command, response)
        self._save(now)
        return response

    def _answer(self, command: AnyCommand, now: datetime) -> CommandResponse:
        if isinstance(command, Override):
            held = ", ".join(self._loads[command.device])
            detail = f"holds {held} {command.state} until {command.until.isoformat()}"
            return CommandResponse(id=command.id, status="accepted", at=now, detail=detail)
        if isinstance(command, DemandResponse) and self.assess is not None:
            can, flexibility, detail = self.assess(command, now)
            return CommandResponse(
                id=command.id,
                status="accepted",
                at=now,
                can_comply=can,
                flexibility_kw=round(flexibility, 1),
                detail=detail,
            )
        return CommandResponse(id=command.id, status="accepted", at=now)

    def _save(self, now: datetime) -> None:
        """Keep what is in force: events not over, overrides not expired, the last advisory
        command (an override or advisory command replaces the one before it)."""
        latest: dict[tuple[str, str], str] = {}
        for command_id, (command, _) in self._accepted.items():
            if isinstance(command, Override):
                latest[("override", command.device)] = command_id
            elif isinstance(command, Advisory):
                latest[("advisory", "")] = command_id
        self._accepted = {
            command_id: (command, answer)
            for command_id, (command, answer) in self._accepted.items()
            if not _ended(command, now)
            and (isinstance(command, DemandResponse) or command_id in latest.values())
        }
        self._store.save(
            Stored(
                [
                    (command.model_dump_json(), answer.model_dump_json(by_alias=True))
                    for command, answer in self._accepted.values()
                ]
            )
        )

    def _check(self, command: DemandResponse | Override | Advisory, now: datetime) -> str | None:
        if isinstance(command, Override):
            if command.device not in self._loads:
                have = ", ".join(sorted(self._loads)) or "none (the site has no control loads)"
                return (
                    f"device {command.device!r} carries no load the agent controls; "
                    f"devices with loads: {have}"
                )
            if command.until <= now:
                return f"until {command.until.isoformat()} has already passed"
            if command.until > now + MAX_AHEAD:
                return f"an override lasts at most {MAX_AHEAD.days} days"
        if isinstance(command, DemandResponse):
            end = command.start + timedelta(seconds=command.duration_s)
            if end <= now:
                return "the event is already over"
            if command.start > now + MAX_AHEAD:
                return f"an event starts at most {MAX_AHEAD.days} days ahead"
        return None

    def _apply(self, command: DemandResponse | Override | Advisory) -> None:
        match command:
            case DemandResponse():
                self.inputs.demand_response[command.id] = command
            case Override():
                self.inputs.overrides[command.device] = command
            case Advisory():
                self.inputs.advisory = command.advisory

    @staticmethod
    def _reject(command_id: str | None, reason: str, now: datetime) -> CommandResponse:
        log.warning("command %s rejected: %s", command_id, reason)
        return CommandResponse(id=command_id, status="rejected", reason=reason, at=now)


def _ended(command: AnyCommand, now: datetime) -> bool:
    if isinstance(command, DemandResponse):
        return command.start + timedelta(seconds=command.duration_s) <= now
    if isinstance(command, Override):
        return command.until <= now
    return False


def _reasons(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = error["loc"]
        if loc and loc[0] in ("demand_response", "override", "advisory"):
            loc = loc[1:]  # the union's tag, not a field (`advisory` is both)
        where = ".".join(str(p) for p in loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] not in ("missing", "value_error", "model_type", "json_invalid"):
            message += f" (got {_shown(error['input'])})"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _shown(value: object) -> str:
    """The offending value as JSON, short: what the sender sent, not what Python made of it."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _loose(payload: bytes) -> dict[str, object]:
    """The payload as a plain mapping, as far as it can be read, to answer a bad command."""
    try:
        document = json.loads(payload)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _id_of(payload: bytes) -> str | None:
    value = _loose(payload).get("id")
    return value if isinstance(value, str) else None


def _site_of(payload: bytes) -> str | None:
    value = _loose(payload).get("site")
    return value if isinstance(value, str) else None
