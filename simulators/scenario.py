"""The scenario file (configs/scenarios/*.yaml): the park's factories, their machines and
the day's events, as frozen models, and `load_scenario`, which reads one with every problem
named at its file, line and column, as for a site file.

A scenario only says what the park is; the plants built from it (simulators/factory.py), the
site files its agents get (simulators/site.py) and its runs (simulators/park_run.py) read it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    PositiveFloat,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from edge_agent.config.base import Name, StrictModel
from edge_agent.config.loader import did_you_mean, load_document
from edge_agent.control.config import LoadConfig
from edge_agent.energy.tariff import TariffConfig, Voltage

from .events import Event, check_events
from .load_policies import Mode, load_for
from .machine_params import ParamValue, param_problems
from .machines import PHYSICS

__all__ = ["FactorySpec", "MachineSpec", "Scenario", "load_scenario"]


LOAD_FIELDS = (
    "priority",
    "sheddable",
    "min_on_s",
    "min_off_s",
    "max_off_s",
    "max_sheds_per_day",
    "rated_kw",
    "band",
)
"""The fields of a machine's load policy a scenario may set in `load:`."""


def _fail(errors: list[tuple[tuple[str | int, ...], str, object]]) -> None:
    """Raise the problems found, each at its own place below the field validated:
    (path, message, value). A message says what was expected and what was found."""
    if errors:
        raise ValidationError.from_exception_data(
            "scenario",
            [_detail(loc, message, v) for loc, message, v in errors],
        )


def _unique_names(items: object, what: str, handler: ValidatorFunctionWrapHandler) -> Any:
    """The list validated, and two entries with one name reported at the second, naming
    the first: together with the entries' own problems, so that all are said at once."""
    first: dict[str, int] = {}
    errors: list[InitErrorDetails] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        name = item.get("name") if isinstance(item, dict) else getattr(item, "name", None)
        if not isinstance(name, str):
            continue
        if name in first:
            message = (
                f"two {what} are named {name!r} (entries {first[name] + 1} and {index + 1}); "
                "names must be unique"
            )
            errors.append(_detail((index, "name"), message, name))
        first.setdefault(name, index)
    try:
        validated = handler(items)
    except ValidationError as exc:
        errors += [
            InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e.get("ctx", {}))
            if e["type"] != "value_error"
            else _detail(e["loc"], e["msg"].removeprefix("Value error, "), e["input"])
            for e in exc.errors()
        ]
        validated = None
    if errors:
        raise ValidationError.from_exception_data("scenario", errors)
    return validated


def _detail(loc: tuple[str | int, ...], message: str, value: object) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)


class MachineSpec(StrictModel):
    name: Name
    model: str
    """An OPC UA node map of the catalogue with physics in `simulators.machines.PHYSICS`:
    air-compressor, batch-furnace, electric-furnace, ev-charger, forklift-charger,
    injection-moulder, process-chiller, rooftop-pv or tank-pump."""
    params: dict[str, ParamValue] = Field(default_factory=dict)
    """Sizes and physics of the machine: fields of its physics class (rated_kw, tank_m3,
    receiver_m3, batches_per_day as a list, ...), set after the seed has varied it, so that
    what is set here wins (simulators/machine_params.py)."""
    control: bool = True
    """`false`: the agent does not control this machine at all (it is no load in
    `control.loads`), whatever its model's policy."""
    load: dict[str, Any] | None = None
    """Overrides of the model's load policy (simulators/load_policies.py): priority,
    sheddable, min_on_s, min_off_s, max_off_s, max_sheds_per_day, rated_kw, band (merged
    into the policy's band; `band: null` removes it). Without it, a `rated_kw` in `params`
    is the load's rated power too."""

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        if model not in PHYSICS:
            known = sorted(PHYSICS)
            raise ValueError(
                f"unknown machine model {model!r}; expected one of: {', '.join(known)}"
                f"{did_you_mean(model, known)}"
            )
        return model

    @field_validator("params", mode="before")
    @classmethod
    def _known_params(cls, params: object, info: ValidationInfo) -> object:
        model = info.data.get("model")
        if isinstance(params, dict) and isinstance(model, str):
            _fail(
                [
                    ((name,), message, params[name])
                    for name, message in param_problems(model, params)
                ]
            )
        return params

    @model_validator(mode="after")
    def _valid_load(self) -> Self:
        if self.load is None:
            return self
        if not self.control:
            _fail([(("load",), "a machine with `control: false` has no load policy", self.load)])
        if load_for(self.name, self.model, "agent") is None:
            _fail(
                [
                    (
                        ("load",),
                        f"a {self.model} is not a load the agent may control (no policy in "
                        "simulators/load_policies.py); remove `load:`",
                        self.load,
                    )
                ]
            )
        unknown = [
            (
                (key,),
                f"unknown field {key!r}{did_you_mean(key, list(LOAD_FIELDS))}; expected "
                f"one of: {', '.join(LOAD_FIELDS)}",
                value,
            )
            for key, value in self.load.items()
            if key not in LOAD_FIELDS
        ]
        _fail([(("load", *loc), m, v) for loc, m, v in unknown])
        try:
            LoadConfig.model_validate(self.load_policy("agent"))
        except ValidationError as exc:
            _fail([_load_error(self.load, error) for error in exc.errors()])
        return self

    def load_policy(self, mode: Mode) -> dict[str, Any] | None:
        """The machine's `control.loads` entry in `mode`, the scenario's overrides applied;
        None if it is no load in `mode`."""
        if not self.control:
            return None
        overrides = dict(self.load or {})
        if "rated_kw" in self.params and "rated_kw" not in overrides:
            overrides["rated_kw"] = self.params["rated_kw"]
        return load_for(self.name, self.model, mode, overrides=overrides)


def _load_error(
    load: dict[str, Any], error: ErrorDetails
) -> tuple[tuple[str | int, ...], str, object]:
    """A LoadConfig error on the merged policy, at the override it comes from (or at
    `load:` for a rule between fields, such as min_off_s under max_off_s)."""
    loc = tuple(error["loc"])
    written = loc[:1] != () and loc[0] in load
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be"):
        message = "expected" + message.removeprefix("Input should be")
    if error["type"] != "value_error":
        message += f"; found {error['input']!r}"
    return (("load", *loc) if written else ("load",), message, error["input"])


class FactorySpec(StrictModel):
    name: Name
    base_load_kw: PositiveFloat
    """The process load besides the machines, at full shift."""
    night_share: float = Field(default=0.35, ge=0, le=1)
    """The base load between shifts (22:00-06:00 local), as a share of the day's."""
    machines: list[MachineSpec] = Field(default_factory=list)
    limit_kw: PositiveFloat | None = None
    """The demand limit the factory's agent holds (the billing window's average, kW); its
    compressors, chillers, pump and chargers are the loads it may shed, the batch furnace
    and the chargers the ones it may shift. Without it the agent only measures."""
    voltage: Voltage | None = None
    """The factory's supply voltage, which sets its prices; the scenario's `tariff.voltage`
    when left out."""

    @field_validator("machines", mode="wrap")
    @classmethod
    def _unique_machines(cls, machines: object, handler: ValidatorFunctionWrapHandler) -> Any:
        return _unique_names(machines, "machines", handler)


def _with_offset(value: object) -> object:
    """A start without its UTC offset is ambiguous by hours: say so, and how to write it."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(
            "expected a date and time with its UTC offset, like 2026-03-02T00:00:00+07:00; "
            f"found {value.isoformat()}"
        )
    return value


class Scenario(StrictModel):
    """A simulated stretch of a park's life, read from configs/scenarios/*.yaml."""

    name: Name
    park: Name
    timezone: str = "Asia/Ho_Chi_Minh"
    start: Annotated[AwareDatetime, BeforeValidator(_with_offset)]
    duration_h: PositiveFloat = 24
    seed: int = 1
    poll_interval_s: PositiveFloat = 5
    summary_interval_s: int = 300
    tariff: TariffConfig = TariffConfig()
    """The time-of-use calendar, voltage and prices (edge_agent/energy/tariff.py) of every
    factory's site file and of the score; a factory may set its own `voltage`."""
    factories: list[FactorySpec] = Field(min_length=1)
    events: list[Event] = Field(default_factory=list)
    """What happens during the run, each at a local time of day "HH:MM" (or "HH:MM:SS") in
    `timezone`, the first such moment at or after `start`: `demand_response`,
    `device_failure`, `broker_outage` (simulators/events.py has their fields)."""

    @field_validator("factories", mode="wrap")
    @classmethod
    def _unique_factories(cls, factories: object, handler: ValidatorFunctionWrapHandler) -> Any:
        return _unique_names(factories, "factories", handler)

    def tariff_of(self, factory: FactorySpec) -> TariffConfig:
        """The tariff `factory` is billed at: the scenario's, at the factory's voltage."""
        if factory.voltage is None:
            return self.tariff
        return self.tariff.model_copy(update={"voltage": factory.voltage})


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; a `ConfigError` names each problem's file, line,
    column and field, what was expected and what was found, as for a site file."""
    return load_document(path, Scenario, checks=check_events)
