"""Commands from the park: demand-response events, manual overrides, advisory mode.

Every command is validated before it changes anything. A malformed, unknown or out-of-range
command is answered `rejected` with the reason on the response topic and changes nothing; a
valid one is applied and answered `accepted`. A command addressed to another site is
ignored without an answer (it is that site's to answer).
"""

from __future__ import annotations

import json
import logging
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

from edge_agent.config.schema import SiteConfig

__all__ = ["Command", "CommandResponse", "Commands", "ControlInputs"]

log = logging.getLogger(__name__)


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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


Command = Annotated[DemandResponse | Override | Advisory, Field(discriminator="type")]
_COMMAND: TypeAdapter[DemandResponse | Override | Advisory] = TypeAdapter(Command)


class CommandResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

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
    def __init__(self, config: SiteConfig) -> None:
        self._site = config.site.name
        self._devices = {d.name for d in config.devices}
        self.inputs = ControlInputs()
        self.assess: Assessor | None = None

    def handle(self, payload: bytes, now: datetime) -> CommandResponse | None:
        """Validate and apply; the response to publish, or None for another site's command."""
        try:
            command = _COMMAND.validate_json(payload)
        except ValidationError as exc:
            site = _site_of(payload)
            if site is not None and site != self._site:
                return None
            return self._reject(_id_of(payload), _reasons(exc), now)
        if command.site != self._site:
            return None
        problem = self._check(command, now)
        if problem is not None:
            return self._reject(command.id, problem, now)
        self._apply(command)
        log.info("command %s accepted: %s", command.id, command.model_dump_json())
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

    def _check(self, command: DemandResponse | Override | Advisory, now: datetime) -> str | None:
        if isinstance(command, Override):
            if command.device not in self._devices:
                return (
                    f"unknown device {command.device!r}; this site has: "
                    f"{', '.join(sorted(self._devices))}"
                )
            if command.until <= now:
                return f"until {command.until.isoformat()} has already passed"
            if command.until > now + timedelta(days=7):
                return "an override lasts at most 7 days"
        if isinstance(command, DemandResponse):
            end = command.start + timedelta(seconds=command.duration_s)
            if end <= now:
                return "the event is already over"
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


def _reasons(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(
            str(p) for p in error["loc"] if p not in ("demand_response", "override", "advisory")
        )
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


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
