"""YAML read into plain data, with the file, line and column of every key and value.

Pydantic reports an error by its path in the data (`devices.0.port`); these locations turn
that path back into `site.yaml:14:11`, which is what an integrator needs to fix a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

__all__ = ["Located", "Mark", "Path_", "YamlSyntaxError", "read_yaml"]

Path_ = tuple[str | int, ...]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Mark:
    file: str
    line: int
    """1-based, as editors count."""
    column: int
    """1-based."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(slots=True)
class Located:
    """Plain data (dicts, lists, scalars) and where each part of it was written."""

    data: Any
    keys: dict[Path_, Mark] = field(default_factory=dict)
    values: dict[Path_, Mark] = field(default_factory=dict)
    env_problems: list[tuple[Path_, str]] = field(default_factory=list)

    def graft(self, other: Located, source: Path_, target: Path_) -> None:
        """Copy the marks of `other` below `source` to below `target` in this document."""
        n = len(source)
        for marks, into in ((other.keys, self.keys), (other.values, self.values)):
            for path, mark in marks.items():
                if path[:n] == source:
                    into[target + path[n:]] = mark

    def mark_for(self, path: Path_, *, key: bool = False) -> Mark | None:
        """The mark of `path`, or of its nearest ancestor that has one."""
        first, second = (self.keys, self.values) if key else (self.values, self.keys)
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            mark = first.get(prefix) or second.get(prefix)
            if mark is not None:
                return mark
        return None


class YamlSyntaxError(Exception):
    def __init__(self, mark: Mark, problem: str) -> None:
        super().__init__(f"{mark}: {problem}")
        self.mark = mark
        self.problem = problem


def read_yaml(path: Path, *, environ: dict[str, str] | None = None) -> Located:
    """Parse `path`, substituting `${VAR}` and `${VAR:-default}` in string values."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    name = str(path)
    yaml = YAML(typ="rt")
    try:
        with path.open(encoding="utf-8") as stream:
            raw = yaml.load(stream)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise YamlSyntaxError(Mark(name, line, column), exc.problem or str(exc)) from None
    located = Located(None)
    located.values[()] = Mark(name, 1, 1)
    located.data = _convert(raw, (), name, located, env)
    return located


def _convert(node: Any, path: Path_, name: str, out: Located, env: Mapping[str, str]) -> Any:
    if isinstance(node, CommentedMap):
        result: dict[Any, Any] = {}
        for key, value in node.items():
            child = (*path, key)
            k_line, k_col = node.lc.key(key)
            v_line, v_col = node.lc.value(key)
            out.keys[child] = Mark(name, k_line + 1, k_col + 1)
            out.values[child] = Mark(name, v_line + 1, v_col + 1)
            result[key] = _convert(value, child, name, out, env)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            line, col = node.lc.item(index)
            out.values[child] = Mark(name, line + 1, col + 1)
            items.append(_convert(value, child, name, out, env))
        return items
    if isinstance(node, str):
        return _substitute(str(node), path, out, env)
    return node


def _substitute(text: str, path: Path_, out: Located, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        variable, default = match.group(1), match.group(2)
        if variable in env:
            return env[variable]
        if default is not None:
            return default
        out.env_problems.append(
            (path, f"environment variable {variable} is not set (written as ${{{variable}}})")
        )
        return match.group(0)

    return _ENV.sub(replace, text)
