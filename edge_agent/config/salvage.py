"""What of a wrong document can still be read as typed models, for the cross-field rules.

A site file with a wrong port on one device should still have its control section's names
checked, in the same run: an integrator wants every problem at once. Pydantic gives no model
of a document that fails, so the parts the rules read are read here again, leniently:

- a model is built from its fields when it fails as a whole (its own validators are its own
  checks, reported with pydantic's errors, and are not run here);
- constraints (a range, a name's pattern) are not applied: a value is kept if it has its
  type (a `Name` is read as a `str`); one of the wrong type falls back to its field's default;
- a list or mapping keeps the entries that can be read, and one that is required but cannot
  be read at all is read as empty;
- a required text or decimal number that is missing (a host, a limit) is read as '' or 0.0:
  the rules judge such values only where they are written. A name, a count or a choice (a
  queue's length, a driver) is not made up: its entry is left out.

Where an entry is left out, `in_file` maps the indices of what was read back to the file's,
and `may_hold` tells whether a name a rule did not find may be among those left out. A value
read as its default is `replaced`: what a rule finds there is not what is written.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Final, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from .findings import Path_

__all__ = ["Salvage", "choose"]

_TAGS = ("driver", "kind")
"""The fields that tell the members of a union apart, in site and scenario files."""


def choose(annotation: Any, data: Any) -> Any:
    """Unwrap Annotated and Optional; pick a union member by its tag (`driver`, `kind`)."""
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        for member in members:
            for tag in _TAGS:
                field = getattr(member, "model_fields", {}).get(tag)
                if (
                    field is not None
                    and isinstance(data, dict)
                    and data.get(tag) in get_args(field.annotation)
                ):
                    return member
        return members[0] if len(members) == 1 else None
    return annotation


class _Unreadable:
    """A value that cannot be read as its type."""


_UNREADABLE: Final = _Unreadable()

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}

_PLACEHOLDERS: Final[dict[Any, object]] = {str: "", float: 0.0}
"""What a required value of these types is read as when it is missing or cannot be read."""


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    try:
        adapter = _ADAPTERS.get(annotation)
    except TypeError:  # an annotation that cannot be hashed is not kept
        return TypeAdapter(annotation)
    if adapter is None:
        adapter = _ADAPTERS[annotation] = TypeAdapter(annotation)
    return adapter


def _empty(annotation: Any) -> list[Any] | dict[Any, Any] | None:
    """An empty list or mapping for a list or mapping type; None for any other."""
    origin = get_origin(choose(annotation, None))
    return [] if origin is list else {} if origin is dict else None


class Salvage:
    """One lenient reading of a document's parts; what it left out is recorded here."""

    def __init__(self) -> None:
        self._kept: dict[Path_, list[int]] = {}
        """A list that lost entries, by its path as read: the file's index of each kept."""
        self._left_out: dict[Path_, set[str | None]] = {}
        """The lists and mappings, by their path in the file, that lost entries, and the
        names of those (None for one without a name, or for a whole collection read as
        empty)."""
        self.replaced: set[Path_] = set()
        """The values, by their path in the file, read as their field's default instead."""

    def field(self, model: type[BaseModel], name: str, data: dict[str, Any]) -> Any:
        """Field `name` of `model`, read from the mapping `data` at the top of the document;
        `None` if it is required and cannot be read."""
        value = self._field(model.model_fields[name], name, data, (name,), (name,))
        return None if value is _UNREADABLE else value

    def in_file(self, path: Path_) -> Path_:
        """A path into what was read, as a path into the file."""
        return tuple(
            self._kept[path[:n]][part] if isinstance(part, int) and path[:n] in self._kept else part
            for n, part in enumerate(path)
        )

    def may_hold(self, among: Path_, name: str | None) -> bool:
        """Whether an entry left out of the collection at `among` (a path in the file) may
        be the one named `name` (None: any entry)."""
        left_out = self._left_out.get(among, set())
        return bool(left_out) and (name is None or None in left_out or name in left_out)

    def _value(self, annotation: Any, data: Any, read: Path_, file: Path_) -> Any:
        """`data` as `annotation`, at `read` in what is read and at `file` in the file."""
        try:
            return _adapter(annotation).validate_python(data)
        except ValidationError:
            pass
        member = choose(annotation, data)
        if member is None:
            return _UNREADABLE
        origin, args = get_origin(member), get_args(member)
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(data, dict):
            return self._model(member, data, read, file)
        if origin is list and isinstance(data, list):
            return self._list(args[0], data, read, file)
        if origin is dict and isinstance(data, dict):
            return self._dict(args[0], args[1], data, read, file)
        if member is not annotation:  # `Name` read as `str`, an Optional's value as itself
            return self._value(member, data, read, file)
        return _UNREADABLE

    def _model(self, model: type[BaseModel], data: dict[str, Any], read: Path_, file: Path_) -> Any:
        """`model` built from the fields that can be read, without its own validators."""
        values = {}
        for name, field in model.model_fields.items():
            value = self._field(field, name, data, (*read, name), (*file, name))
            if value is _UNREADABLE:
                return _UNREADABLE
            values[name] = value
        return model.model_construct(_fields_set={n for n in data if n in values}, **values)

    def _field(
        self, field: FieldInfo, name: str, data: dict[str, Any], read: Path_, file: Path_
    ) -> Any:
        """The field's value as written, else its default, else an empty list or mapping."""
        if name in data:
            value = self._value(field.annotation, data[name], read, file)
            if value is not _UNREADABLE:
                return value
            self.replaced.add(file)
            if _empty(field.annotation) is not None:  # its entries are not known
                self._left_out.setdefault(file, set()).add(None)
        if not field.is_required():
            return field.get_default(call_default_factory=True)
        if name != "name" and field.annotation in _PLACEHOLDERS:
            self.replaced.add(file)
            return _PLACEHOLDERS[field.annotation]
        empty = _empty(field.annotation)
        if empty is None:
            return _UNREADABLE
        self._left_out.setdefault(file, set()).add(None)
        return empty

    def _list(self, item: Any, data: list[Any], read: Path_, file: Path_) -> list[Any]:
        values: list[Any] = []
        kept: list[int] = []
        for index, entry in enumerate(data):
            value = self._value(item, entry, (*read, len(values)), (*file, index))
            if value is not _UNREADABLE:
                values.append(value)
                kept.append(index)
            else:
                name = entry.get("name") if isinstance(entry, dict) else None
                self._left_out.setdefault(file, set()).add(name if isinstance(name, str) else None)
        if len(kept) < len(data):
            self._kept[read] = kept
        return values

    def _dict(
        self, key: Any, item: Any, data: dict[Any, Any], read: Path_, file: Path_
    ) -> dict[Any, Any]:
        values = {}
        for name, entry in data.items():
            read_name = self._value(key, name, read, file)
            value = self._value(item, entry, (*read, name), (*file, name))
            if read_name is _UNREADABLE or value is _UNREADABLE:
                self._left_out.setdefault(file, set()).add(name if isinstance(name, str) else None)
            else:
                values[read_name] = value
        return values
