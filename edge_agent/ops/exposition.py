"""The Prometheus text exposition format (version 0.0.4), written by hand: no client library.

A scrape renders the figures the agent already keeps, so there is no second set of counters
to keep in step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CONTENT_TYPE", "Family", "escape_label_value", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["counter", "gauge", "histogram", "summary", "untyped"]


def escape_label_value(value: str) -> str:
    """Backslash, double quote and line feed are the three characters the format escapes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


@dataclass(slots=True)
class Family:
    """One metric name with its HELP, TYPE and samples."""

    name: str
    kind: Kind
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, labels: Mapping[str, str], value: float, *, suffix: str = "") -> None:
        self.samples.append((suffix, dict(labels), value))

    def render(self) -> str:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for suffix, labels, value in self.samples:
            body = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
            name = self.name + suffix
            lines.append(
                f"{name}{{{body}}} {_number(value)}" if body else f"{name} {_number(value)}"
            )
        return "\n".join(lines) + "\n"


def render(families: list[Family]) -> str:
    """Families without samples are left out."""
    return "".join(f.render() for f in families if f.samples)
