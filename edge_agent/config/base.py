"""The base every configuration model shares: frozen, strict about unknown keys, and finite.

`.inf`, `.nan` and numbers too large for a float (`1e999` reads as infinity) are refused in
every number of a configuration; durations are bounded as well (`Seconds`), so that `1e300`
seconds is an error where it is written rather than an overflow somewhere at run time."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DAY_S", "Name", "Seconds", "StrictModel"]

DAY_S = 86_400
"""The longest timeout, interval, backoff or staleness a configuration may give, in seconds."""


class StrictModel(BaseModel):
    """Validated once at the edge, then read-only; an unknown key is an error, never ignored,
    and a number must be finite."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False
    )


Seconds = Annotated[float, Field(gt=0, le=DAY_S)]
"""A duration in seconds: more than 0, at most a day."""

Name = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Lower-case letters, digits, '-' and '_'; used in MQTT topics and point ids.",
    ),
]
