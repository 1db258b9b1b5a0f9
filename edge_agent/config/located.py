"""YAML read into plain data, with the file, line and column of every key and value.

Pydantic reports an error by its path in the data (`devices.0.port`); these locations turn
that path back into `site.yaml:14:11`, which is what an integrator needs to fix a file.

A site file comes from people and from tools, and some are hostile by accident or not: the
reader refuses, each with where and why, and before any of it costs time or memory,

- a path that is not a readable regular file (a directory, a named pipe, which is never
  opened for reading since that would block, a device, a symlink loop, no permission);
- a file over `MAX_FILE_BYTES`;
- text that is not UTF-8, or holds control characters YAML does not allow (NUL, ESC...);
- a document nested deeper than `MAX_DEPTH`, or holding more than `MAX_VALUES` values once
  its aliases are expanded ("billion laughs": nine anchors of nine aliases each are 342
  bytes and 387 million values); both are counted while the document is composed, so a
  refusal comes before the expansion and ruamel's recursion never runs deep;
- a value Python cannot hold (an integer of thousands of digits).

Anchors and aliases are otherwise allowed, and so are merge keys (`<<: *defaults`): an
alias is converted once and the same result shared wherever it is used, so legitimate
anchors stay cheap.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, ScalarEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from .findings import Path_

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "Located",
    "Mark",
    "Path_",
    "ReadError",
    "YamlSyntaxError",
    "read_yaml",
]

MAX_FILE_BYTES = 1 << 20
"""1 MiB: a large site file is a few tens of kilobytes."""
MAX_VALUES = 100_000
"""Values (scalars, lists, mappings) in a document with its aliases expanded."""
MAX_DEPTH = 50
"""Levels of nesting, with aliases expanded; a site file uses about eight."""

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NOT_ALLOWED = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
"""What YAML 1.2 does not allow in a stream: C0 controls but tab and line breaks, DEL, C1."""
_CONTROL_NAMES = {
    0x00: "NUL",
    0x07: "BEL",
    0x08: "backspace",
    0x0B: "vertical tab",
    0x0C: "form feed",
    0x1A: "SUB, end of file in DOS",
    0x1B: "ESC",
    0x7F: "DEL",
}
_TAG = "tag:yaml.org,2002:"


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
    """Plain data (dicts, lists, scalars) and where each part of it was written.

    A part written once and used again by an alias is the same object in both places, and
    has marks only where it was first used: `mark_for` then gives the alias's own place.
    """

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


class ReadError(Exception):
    """The file cannot be read as a YAML document: where, and why."""

    def __init__(self, mark: Mark, problem: str) -> None:
        super().__init__(f"{mark}: {problem}")
        self.mark = mark
        self.problem = problem


class YamlSyntaxError(ReadError):
    """The text is not valid YAML."""


def read_yaml(path: Path, *, environ: dict[str, str] | None = None) -> Located:
    """Parse `path`, substituting `${VAR}` and `${VAR:-default}` in string values.

    Raises `ReadError` (or its `YamlSyntaxError`) with the place and the reason."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    name = str(path)
    text = _decode(_read_bytes(path, name), name)
    _allowed_characters(text, name)
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = _BoundedComposer
    try:
        root = yaml.compose(text)
    except _Refused as exc:
        raise ReadError(_mark(name, exc.problem_mark), str(exc.problem)) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlSyntaxError(_mark(name, mark), str(exc.problem or exc)) from None
    except ReaderError as exc:
        where = _position(name, text, exc.position if isinstance(exc.position, int) else 0)
        raise YamlSyntaxError(where, f"unacceptable character #x{exc.character:04x}") from None
    except YAMLError as exc:
        raise YamlSyntaxError(Mark(name, 1, 1), str(exc)) from None
    except RecursionError:  # not expected: nesting is bounded while composing
        raise ReadError(Mark(name, 1, 1), f"nested too deeply (at most {MAX_DEPTH})") from None
    located = Located(None)
    located.values[()] = Mark(name, 1, 1)
    if root is not None:
        located.data = _Converter(name, located, env, SafeConstructor(loader=yaml)).value(root, ())
    return located


def _read_bytes(path: Path, name: str) -> bytes:
    """The file's bytes, at most `MAX_FILE_BYTES` of them; anything else is a `ReadError`
    naming what the path is. A named pipe is refused before it is opened (opening one to
    read waits for a writer); the file is then opened non-blocking and checked again with
    fstat, so that one swapped in between cannot block the reader either."""
    at = Mark(name, 1, 1)
    try:
        kind = _not_regular(os.stat(path).st_mode)
    except OSError as exc:
        raise ReadError(at, _open_failure(path, exc)) from None
    if kind is not None:
        raise ReadError(at, kind)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ReadError(at, _open_failure(path, exc)) from None
    try:
        info = os.fstat(fd)
        kind = _not_regular(info.st_mode)
        if kind is not None:
            raise ReadError(at, kind)
        if info.st_size > MAX_FILE_BYTES:
            raise ReadError(at, _too_big(info.st_size))
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:  # the file may grow after fstat
            try:
                chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            except OSError as exc:
                raise ReadError(at, f"cannot be read: {exc.strerror or exc}") from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise ReadError(at, _too_big(size, at_least=True))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _open_failure(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop: the path's symbolic links lead back to themselves"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: the agent's user may not read it"
    if exc.errno == errno.EISDIR:
        return "is a directory, not a file"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return f"no such file: it is a symlink to {os.readlink(path)}, which does not exist"
    if exc.errno == errno.ENOENT:
        return "no such file"
    if exc.errno == errno.ENOTDIR:
        return "no such file: a part of the path is not a directory"
    if exc.errno == errno.ENAMETOOLONG:
        return "no such file: the name is too long"
    return f"cannot be opened: {exc.strerror or exc}"


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    return "is not a regular file"


def _too_big(size: int, *, at_least: bool = False) -> str:
    more = "over " if at_least else ""
    return (
        f"the file is {more}{size:,} bytes ({size / (1 << 20):.1f} MiB); a YAML file here may "
        f"be at most {MAX_FILE_BYTES:,} bytes ({MAX_FILE_BYTES >> 20} MiB)"
    )


def _decode(raw: bytes, name: str) -> str:
    """Strict UTF-8 (a UTF-8 byte order mark is dropped); the first byte that is not is
    located, and UTF-16 or UTF-32 text is named as such."""
    for bom, encoding in (
        (b"\xff\xfe\x00\x00", "UTF-32"),
        (b"\x00\x00\xfe\xff", "UTF-32"),
        (b"\xff\xfe", "UTF-16"),
        (b"\xfe\xff", "UTF-16"),
    ):
        if raw.startswith(bom):
            raise ReadError(
                Mark(name, 1, 1),
                f"the file is {encoding} text (byte order mark {bom.hex(' ').upper()}); "
                "save it as UTF-8",
            )
    try:
        return raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        line_start = raw.rfind(b"\n", 0, start) + 1
        column = len(raw[line_start:start].decode("utf-8", errors="replace")) + 1
        raise ReadError(
            Mark(name, line, column),
            f"not UTF-8 text: byte 0x{raw[start]:02X} cannot be decoded (a binary file, or "
            "text saved as Latin-1 / Windows-1252?); save it as UTF-8",
        ) from None


def _allowed_characters(text: str, name: str) -> None:
    found = _NOT_ALLOWED.search(text)
    if found is None:
        return
    code = ord(found.group())
    label = _CONTROL_NAMES.get(code, "a control character")
    hint = "; is it a binary file, or text saved as UTF-16?" if code == 0 else ""
    raise ReadError(
        _position(name, text, found.start()),
        f"character U+{code:04X} ({label}) is not allowed in YAML (of the control characters, "
        f"only tab, line feed and carriage return are){hint}",
    )


def _position(name: str, text: str, index: int) -> Mark:
    line = text.count("\n", 0, index) + 1
    return Mark(name, line, index - (text.rfind("\n", 0, index) + 1) + 1)


def _mark(name: str, mark: Any) -> Mark:
    """ruamel's 0-based mark as ours; the top of the file when there is none."""
    if mark is None:
        return Mark(name, 1, 1)
    return Mark(name, mark.line + 1, mark.column + 1)


class _Refused(MarkedYAMLError):
    """A document over a cap; its message is for people, not a YAML syntax error."""


@dataclass(frozen=True, slots=True)
class _Alias:
    """Where an alias is used, and the anchored node it stands for."""

    node: Node
    mark: Any


def _node(item: Node | _Alias) -> Node:
    return item.node if isinstance(item, _Alias) else item


def _start(item: Node | _Alias) -> Any:
    return item.mark if isinstance(item, _Alias) else item.start_mark


class _BoundedComposer(Composer):
    """ruamel's composer, counting as it goes: the values of the document with its aliases
    expanded (an alias counts its anchor's whole size again: that is what a reader that
    copies it builds) and the depth (an alias adds its anchor's height). Past a cap, or at
    an alias inside its own anchor, it stops at that place. Each alias in the tree becomes
    an `_Alias`, so that its place is known."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._size: dict[int, int] = {}
        self._height: dict[int, int] = {}
        self._expanded = 0
        self._written = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        is_key = isinstance(parent, MappingNode) and index is None
        if is_key and not isinstance(event, ScalarEvent | AliasEvent):
            raise _Refused(None, None, "a key must be plain text or a number", event.start_mark)
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            return self._alias(node, event, is_key=is_key)
        if self.depth + 1 > MAX_DEPTH:
            raise _Refused(
                None, None, f"nested deeper than {MAX_DEPTH} levels; refused", event.start_mark
            )
        if not is_key:
            self._count(1, event.start_mark, written=True)
        node = super().compose_node(parent, index)
        children: list[Node | _Alias] = (
            [value for _, value in node.value]
            if isinstance(node, MappingNode)
            else list(node.value)
            if isinstance(node, SequenceNode)
            else []
        )
        self._size[id(node)] = 1 + sum(self._size[id(_node(c))] for c in children)
        self._height[id(node)] = 1 + max((self._height[id(_node(c))] for c in children), default=0)
        return node

    def _alias(self, node: Node, event: Any, *, is_key: bool) -> _Alias:
        size = self._size.get(id(node))
        if size is None:
            raise _Refused(
                None,
                None,
                f"alias *{event.anchor} is inside its own anchor (a structure that contains "
                "itself); refused",
                event.start_mark,
            )
        if is_key:
            if not isinstance(node, ScalarNode):
                raise _Refused(None, None, "a key must be plain text or a number", event.start_mark)
            return _Alias(node, event.start_mark)
        if self.depth + self._height[id(node)] > MAX_DEPTH:
            raise _Refused(
                None,
                None,
                f"alias *{event.anchor} nests the document deeper than {MAX_DEPTH} levels; refused",
                event.start_mark,
            )
        self._count(size, event.start_mark, written=False)
        return _Alias(node, event.start_mark)

    def _count(self, values: int, mark: Any, *, written: bool) -> None:
        self._expanded += values
        self._written += values if written else 0
        if self._expanded <= MAX_VALUES:
            return
        if self._written <= MAX_VALUES:
            problem = (
                f"aliases expand the document to more than {MAX_VALUES:,} values (each use of "
                f"an alias repeats its anchor, and aliases of aliases multiply; the file "
                f"writes {self._written:,} values itself up to here); refused"
            )
        else:
            problem = f"the document has more than {MAX_VALUES:,} values; refused"
        raise _Refused(None, None, problem, mark)


class _Converter:
    """Nodes to plain data, recording marks; each node is converted once and its result
    shared by every alias of it."""

    def __init__(
        self, name: str, out: Located, env: Mapping[str, str], constructor: SafeConstructor
    ) -> None:
        self._name = name
        self._out = out
        self._env = env
        self._constructor = constructor
        self._done: dict[int, Any] = {}
        self._entry_marks: dict[int, dict[Any, tuple[Mark, Mark]]] = {}

    def value(self, item: Node | _Alias, path: Path_) -> Any:
        node = _node(item)
        if id(node) in self._done:
            return self._done[id(node)]
        result: Any
        if isinstance(node, MappingNode):
            result = self._mapping(node, path)
        elif isinstance(node, SequenceNode):
            self._plain(node, "seq", "list")
            result = []
            for index, child in enumerate(node.value):
                self._out.values[(*path, index)] = self._at(_start(child))
                result.append(self.value(child, (*path, index)))
        else:
            result = self._scalar(node, path)
        self._done[id(node)] = result
        return result

    def _mapping(self, node: MappingNode, path: Path_) -> dict[Any, Any]:
        self._plain(node, "map", "mapping")
        own: dict[Any, tuple[Mark, Mark]] = {}
        for key_item, value_item in node.value:
            if _is_merge(key_item):
                continue
            key = self._key(key_item)
            if key in own:
                raise YamlSyntaxError(
                    self._at(_start(key_item)),
                    f"duplicate key {_brief(key)} (first written at line {own[key][0].line})",
                )
            own[key] = (self._at(_start(key_item)), self._at(_start(value_item)))
        result: dict[Any, Any] = {}
        marks: dict[Any, tuple[Mark, Mark]] = {}
        merged = False
        for key_item, value_item in node.value:
            if _is_merge(key_item):
                if merged:
                    raise YamlSyntaxError(
                        self._at(_start(key_item)), "a second `<<` merge key in one mapping"
                    )
                merged = True
                for source in self._merge_sources(value_item):
                    data = self.value(source, path)
                    for key, value in data.items():
                        if key not in own and key not in result:
                            result[key] = value
                            marks[key] = self._entry_marks[id(_node(source))][key]
                continue
            key = self._key(key_item)
            result[key] = None  # in the order written; converted below, after any merge
            marks[key] = own[key]
        for key_item, value_item in node.value:
            if not _is_merge(key_item):
                key = self._key(key_item)
                self._out.keys[(*path, key)], self._out.values[(*path, key)] = own[key]
                result[key] = self.value(value_item, (*path, key))
        for key, (key_mark, value_mark) in marks.items():
            self._out.keys[(*path, key)] = key_mark
            self._out.values[(*path, key)] = value_mark
        self._entry_marks[id(node)] = marks
        return result

    def _merge_sources(self, item: Node | _Alias) -> list[Node | _Alias]:
        """`<<: *a` or `<<: [*a, *b]` (the earlier wins), or the same written in place."""
        node = _node(item)
        sources: list[Node | _Alias] = (
            list(node.value) if isinstance(node, SequenceNode) else [item]
        )
        for source in sources:
            if not isinstance(_node(source), MappingNode):
                raise YamlSyntaxError(
                    self._at(_start(source)),
                    "a `<<` merge key takes a mapping (usually an alias, `<<: *defaults`) "
                    "or a list of them",
                )
        return sources

    def _key(self, item: Node | _Alias) -> Any:
        node = _node(item)
        if isinstance(node, ScalarNode) and str(node.tag) == _TAG + "str":
            return str(node.value)
        return self._construct(node)

    def _scalar(self, node: Node, path: Path_) -> Any:
        if str(node.tag) in (_TAG + "str", _TAG + "merge"):  # `<<` is a merge only as a key
            return self._substitute(str(node.value), path)
        return self._construct(node)

    def _construct(self, node: Node) -> Any:
        """A scalar the YAML way (int, float, bool, null, timestamp), located if it fails."""
        try:
            return self._constructor.construct_object(node)
        except MarkedYAMLError as exc:
            raise YamlSyntaxError(
                _mark(self._name, exc.problem_mark or node.start_mark), str(exc.problem or exc)
            ) from None
        except (ValueError, OverflowError, ArithmeticError) as exc:
            text = str(node.value)
            digits = sum(c.isdigit() for c in text)
            if str(node.tag) == _TAG + "int" and digits > sys.get_int_max_str_digits() > 0:
                problem = (
                    f"an integer of {digits:,} digits is too long to read (at most "
                    f"{sys.get_int_max_str_digits():,})"
                )
            else:
                problem = (
                    f"cannot read {_brief(text)} as a {str(node.tag).removeprefix(_TAG)}: {exc}"
                )
            raise YamlSyntaxError(self._at(node.start_mark), problem) from None

    def _plain(self, node: Node, tag: str, what: str) -> None:
        if str(node.tag) != _TAG + tag:
            raise YamlSyntaxError(
                self._at(node.start_mark),
                f"the tag {str(node.tag).replace(_TAG, '!!')} is not supported here: write a "
                f"plain {what}",
            )

    def _at(self, mark: Any) -> Mark:
        return _mark(self._name, mark)

    def _substitute(self, text: str, path: Path_) -> str:
        out, env = self._out, self._env

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


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text):,} characters)"


def _is_merge(item: Node | _Alias) -> bool:
    node = _node(item)
    return isinstance(node, ScalarNode) and str(node.tag) == _TAG + "merge"
