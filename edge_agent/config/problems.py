"""A problem in a configuration file, at its place: file, line and column, and the field.

The loader builds its problems here, from pydantic's errors and from the cross-field rules'
findings (`findings.Finding`); a check of another file (a scenario's) builds its own here too,
without importing the loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .findings import did_you_mean, hint
from .located import Located, Mark, Path_

__all__ = ["Problem", "did_you_mean", "field_path", "hint", "mark_at", "problem_at"]


@dataclass(frozen=True, slots=True)
class Problem:
    mark: Mark
    field: str
    """The field path as written in the file, e.g. `devices[main-meter].points.power_kw.scale`."""
    message: str

    def __str__(self) -> str:
        field = f"{self.field}: " if self.field else ""
        return f"{self.mark}: {field}{self.message}"


def problem_at(doc: Located, path: Path_, message: str, *, key: bool = False) -> Problem:
    """A problem at `path` in the data, with its file, line and column and its field path."""
    return Problem(mark_at(doc, path, key=key), field_path(doc.data, path), message)


def mark_at(doc: Located, path: Path_, *, key: bool = False) -> Mark:
    """Where `path` (or its key) is written; `?:1:1` for a value the file does not hold."""
    return doc.mark_for(path, key=key) or Mark("?", 1, 1)


def field_path(data: Any, path: Path_) -> str:
    """`devices[main-meter].port`: devices are named by their name, which is what people know."""
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            name = (
                data[part].get("name")
                if isinstance(data, list) and isinstance(data[part], dict)
                else None
            )
            parts[-1:] = [f"{parts[-1] if parts else ''}[{name or part}]"]
        else:
            parts.append(str(part))
        if isinstance(data, dict | list):
            try:
                data = data[part]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                data = None
    return ".".join(parts)
