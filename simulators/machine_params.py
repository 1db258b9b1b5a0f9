"""The sizes and physics a scenario may set on a machine: its physics class's own fields.

A scenario's `params:` (a machine's rated power, a tank's or a receiver's volume, the
batches a furnace gets a day) are applied after `vary()` has drawn the machine from the
seed, so that a value the scenario sets wins and every other machine draws the same numbers
as before. What may be set is read from the physics class (simulators.machines.PHYSICS):
its public fields of a plain type (a number, a whole number, true or false, a tuple of whole
numbers, written as a list). The registers the score reads (energy, violations, counters)
are not parameters: a scenario sets up a plant, it does not set its results. A value set is
not propagated to the sizes `vary()` derived from it (a pump's flow from its rated power):
set those too when they matter.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping
from typing import Any, get_args, get_origin

from edge_agent.config.loader import did_you_mean

from .equipment import Machine
from .machines import PHYSICS

__all__ = ["ParamValue", "apply_params", "param_problems", "physics_class", "settable"]

ParamValue = float | int | bool | list[int]
"""A parameter as a scenario writes it; a tuple field is written as a list."""

_RESULTS = frozenset(
    {
        "energy_kwh",
        "failsafe",
        "failsafe_trips",
        "cycles",
        "batches_done",
        "delivered_kwh",
        "sessions_short",
        "remaining_s",
    }
)
"""What a machine counts as it runs (besides its `violations()`): not a parameter."""


def physics_class(model: str) -> type[Machine]:
    """The class behind a model's physics (a `functools.partial` is looked through)."""
    factory: Any = PHYSICS[model]
    cls = factory.func if isinstance(factory, functools.partial) else factory
    if not (isinstance(cls, type) and issubclass(cls, Machine)):
        raise TypeError(f"{model}: its physics is not a Machine class")
    return cls


@functools.cache
def settable(model: str) -> dict[str, Any]:
    """The parameters of a model: field name -> its type (float, int, bool, or a tuple
    type of ints), in the class's field order."""
    cls = physics_class(model)
    hints = typing.get_type_hints(cls)
    results = _RESULTS | set(PHYSICS[model]().violations())
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(cls)
        if f.init
        and not f.name.startswith("_")
        and f.name not in results
        and _kind(hints[f.name]) is not None
    }


def _kind(annotation: Any) -> str | None:
    """How a value of this type is written in a scenario, or None if it is no parameter."""
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return "a number"
    if get_origin(annotation) is tuple:
        args = get_args(annotation)
        if args and all(a is int for a in args if a is not Ellipsis):
            count = "" if Ellipsis in args else f"{len(args)} "
            return f"a list of {count}whole numbers, like [{', '.join(['3'] * (len(args) or 1))}]"
    return None


def _fits(annotation: Any, value: object) -> bool:
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(float(value))
        )
    args = get_args(annotation)
    return (
        isinstance(value, list)
        and (Ellipsis in args or len(value) == len(args))
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )


def param_problems(model: str, params: Mapping[str, object]) -> list[tuple[str, str]]:
    """(parameter, message) for each parameter `model` does not have or whose value does
    not fit its type; nothing for a model without physics (reported on its own)."""
    if model not in PHYSICS:
        return []
    known = settable(model)
    problems = []
    for name, value in params.items():
        annotation = known.get(name)
        if annotation is None:
            problems.append(
                (
                    name,
                    f"{model} has no parameter {name!r}; expected one of: "
                    f"{', '.join(known)}{did_you_mean(name, list(known))}",
                )
            )
        elif not _fits(annotation, value):
            problems.append((name, f"expected {_kind(annotation)}; found {value!r}"))
    return problems


def apply_params(machine: Machine, model: str, params: Mapping[str, ParamValue]) -> Machine:
    """`machine` (of `model`) with `params` set, in place, as the field's type (a list as a
    tuple, a whole number as a float where the field is one); checked by `param_problems`
    beforehand."""
    known = settable(model)
    for name, value in params.items():
        if isinstance(value, list):
            setattr(machine, name, tuple(value))
        elif known[name] is float:
            setattr(machine, name, float(value))
        else:
            setattr(machine, name, value)
    return machine
