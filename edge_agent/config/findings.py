"""What a cross-field rule of a configuration finds: where it is written, and what is wrong.

A rule reads typed models and returns findings. The loader places each at its file, line and
column (it has the YAML's marks); `SiteConfig`'s validator raises them for a site built in
code. Nothing here imports the rest of the package, so that a protocol's own rules (in
`drivers/`) return findings too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["Absent", "Finding", "Path_", "did_you_mean", "hint"]

Path_ = tuple[str | int, ...]
"""Keys and list indices into a document, from its top: `("devices", 2, "line")`."""


@dataclass(frozen=True, slots=True)
class Absent:
    """What a rule looked for and did not find: an entry named `name` (None: any entry that
    would do) in the list or mapping at `among`. Where the document could not be read whole,
    the claim holds only if no entry left out could be it."""

    among: Path_
    """e.g. `("devices",)`, or `("devices", 2, "points")`."""
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    path: Path_
    """Where the problem is written, e.g. `("control", "loads", 1, "command")`."""
    message: str
    absent: Absent | None = None
    """Set when the problem is that something is not there."""


def did_you_mean(word: str, candidates: list[str]) -> str:
    """`; did you mean 'x'?` for the closest candidate, or nothing."""
    return hint(difflib.get_close_matches(word, candidates, n=1, cutoff=0.6))


def hint(close: list[str]) -> str:
    """`; did you mean 'x'?` for the first of `close`, or nothing."""
    return f"; did you mean {close[0]!r}?" if close else ""
