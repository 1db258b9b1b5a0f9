"""Site file -> validated `SiteConfig`, or every problem with its file, line and column.

An integrator fixing a file wants all the problems at once, each saying where it is, which
field, what was expected and what was found, and a hint when a key is misspelt. Nothing here
raises a traceback at the user: every failure becomes a `Problem`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from drivers.modbus.config import ModbusLine, ModbusTcpDevice
from drivers.opcua.config import OpcUaDevice
from drivers.registry import DRIVERS, PROTOCOLS, AnyDevice
from edge_agent.control.config import ControlConfig

from .catalogue import (
    BUILTIN_CATALOGUE,
    apply_point_defaults,
    catalogue_dirs,
    find_model,
    known_models,
    merge_model,
)
from .located import Located, Mark, Path_, ReadError, YamlSyntaxError, read_yaml
from .problems import Problem, did_you_mean, field_path, hint, mark_at, problem_at
from .rules import Site, site_findings
from .salvage import Salvage, choose
from .schema import SiteConfig

__all__ = [
    "ConfigError",
    "Problem",
    "did_you_mean",
    "load_document",
    "load_modbus_model",
    "load_model",
    "load_opcua_model",
    "load_site",
    "problem_at",
]

M = TypeVar("M", bound=BaseModel)
D = TypeVar("D", bound=AnyDevice)


class ConfigError(Exception):
    """The site file cannot be used; `problems` lists every reason found.

    Its text shows the first `SHOWN` problems and how many more there are: a generated file
    with seventy thousand unknown keys is refused in a screenful, not in megabytes."""

    SHOWN = 200

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        more = count - self.SHOWN
        super().__init__(
            f"{count:,} problem{'s' if count != 1 else ''} in the configuration:\n"
            + "\n".join(f"  {p}" for p in problems[: self.SHOWN])
            + (f"\n  ... and {more:,} more problem{'s' if more != 1 else ''}" if more > 0 else "")
        )


def load_site(path: Path | str, *, environ: dict[str, str] | None = None) -> SiteConfig:
    """Read, resolve catalogue models, and validate a site file.

    The cross-field rules (`rules.site_findings`) run over the typed site, or where another
    part of the file is wrong, over what of it can be read (`salvage`): their problems come
    with the others, all at once."""
    path = Path(path)
    doc = _read(path, environ)
    problems = [Problem(mark_at(doc, p), field_path(doc.data, p), m) for p, m in doc.env_problems]
    model_problems = _resolve_models(doc, path)
    salvage = Salvage()
    try:
        config: SiteConfig | None = SiteConfig.without_rules(doc.data)
        invalid: list[Problem] = []
    except ValidationError as exc:
        config = None
        # A device whose model is unknown lacks the model's fields: say so once, not per field.
        unresolved = {p.field.removesuffix(".model") for p in model_problems}
        invalid = [
            p
            for p in _problems(doc, exc.errors())
            if not (
                p.message.startswith("required field is missing")
                and p.field.rsplit(".", 1)[0] in unresolved
            )
        ]
    site = config if config is not None else _Readable.salvaged(doc.data, salvage)
    problems += model_problems + _rule_problems(doc, site, salvage) + invalid
    if problems or config is None:
        raise ConfigError(_ordered(problems))
    return config


@dataclass(frozen=True, slots=True)
class _Readable:
    """The sections the rules read, as far as they can be read from a file that does not
    validate."""

    devices: Sequence[AnyDevice]
    modbus_lines: Sequence[ModbusLine]
    control: ControlConfig | None

    @classmethod
    def salvaged(cls, data: dict[str, Any], salvage: Salvage) -> _Readable:
        return cls(**{f.name: salvage.field(SiteConfig, f.name, data) for f in fields(cls)})


def _rule_problems(doc: Located, site: Site, salvage: Salvage) -> list[Problem]:
    """The rules' findings at their places, but where the salvage read a value other than
    the one written (a value of the wrong type, read as its default), and where what is said
    to be absent may be an entry the salvage left out."""
    problems = []
    for finding in site_findings(site):
        path = salvage.in_file(finding.path)
        absent = finding.absent
        if any(path[:n] in salvage.replaced for n in range(len(path) + 1)) or (
            absent is not None and salvage.may_hold(salvage.in_file(absent.among), absent.name)
        ):
            continue
        problems.append(problem_at(doc, path, finding.message))
    return problems


def load_document(
    path: Path | str,
    model: type[M],
    *,
    environ: dict[str, str] | None = None,
    checks: Callable[[Located], list[Problem]] | None = None,
) -> M:
    """Any YAML file validated into `model`, its problems located as a site file's are.

    `checks` adds the problems that need more than one field (a name that must refer to
    another entry, say); they are reported together with the model's own.
    """
    path = Path(path)
    doc = _read(path, environ)
    problems = [Problem(mark_at(doc, p), field_path(doc.data, p), m) for p, m in doc.env_problems]
    problems += checks(doc) if checks is not None else []
    try:
        result = model.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(_ordered(problems + _problems(doc, exc.errors(), model))) from None
    if problems:
        raise ConfigError(_ordered(problems))
    return result


def _read(path: Path, environ: dict[str, str] | None) -> Located:
    try:
        doc = read_yaml(path, environ=environ)
    except ReadError as exc:
        raise ConfigError([_read_problem(exc)]) from None
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(Mark(str(path), 1, 1), "", "expected a mapping at the top")])
    return doc


def _read_problem(exc: ReadError, where: str = "") -> Problem:
    """A file that cannot be read, or is not YAML, as a problem at its place."""
    if isinstance(exc, YamlSyntaxError):
        return Problem(exc.mark, "", f"invalid YAML{where}: {exc.problem}")
    return Problem(exc.mark, "", f"{where.strip()}: {exc.problem}" if where else exc.problem)


def load_model(model: str, *, catalogue: Path | None = None) -> AnyDevice:
    """A catalogue model as a device, validated like a site's device: as its protocol's
    stand-in device (a Modbus model as a `modbus-tcp` device at host `model`, an OPC UA model
    at `opc.tcp://model`); a file without a known `protocol:` is read as the first protocol of
    the registry's (Modbus).

    The simulators serve catalogue maps with it, and a test validates every catalogue file.
    """
    directory = catalogue or BUILTIN_CATALOGUE
    path = directory / f"{model}.yaml"
    try:
        data = read_yaml(path).data if path.is_file() else None
    except ReadError as exc:
        raise ConfigError([_read_problem(exc, " in catalogue")]) from None
    named = data.get("protocol") if isinstance(data, dict) else None
    protocol = PROTOCOLS.get(named) if isinstance(named, str) else None
    stub = (protocol or next(iter(PROTOCOLS.values()))).catalogue_device
    doc = Located({"devices": [{**stub, "name": "model", "model": model}]})
    doc.values[()] = Mark(str(path), 1, 1)
    problems = _resolve_models(doc, directory / "site.yaml", dirs=[directory])
    try:
        device = DRIVERS[stub["driver"]].model.model_validate(doc.data["devices"][0])
    except ValidationError as exc:
        problems += _problems(doc, [{**e, "loc": ("devices", 0, *e["loc"])} for e in exc.errors()])
        raise ConfigError(_ordered(problems)) from None
    if problems:
        raise ConfigError(_ordered(problems))
    return device


def load_modbus_model(model: str) -> ModbusTcpDevice:
    """A Modbus catalogue model, for a simulator that serves its register map."""
    return _load_as(model, ModbusTcpDevice, "not a Modbus model")


def load_opcua_model(model: str) -> OpcUaDevice:
    """An OPC UA catalogue model, for a simulator that serves its nodes."""
    return _load_as(model, OpcUaDevice, "not an OPC UA model")


def _load_as(model: str, kind: type[D], refusal: str) -> D:
    device = load_model(model)
    if not isinstance(device, kind):
        raise ConfigError([Problem(Mark(model, 1, 1), "protocol", refusal)])
    return device


def _resolve_models(
    doc: Located, site_file: Path, *, dirs: list[Path] | None = None
) -> list[Problem]:
    devices = doc.data.get("devices")
    if not isinstance(devices, list):
        return []
    dirs = dirs if dirs is not None else catalogue_dirs(site_file)
    problems: list[Problem] = []
    for index, device in enumerate(devices):
        path: Path_ = ("devices", index)
        if not isinstance(device, dict):
            continue
        model = device.get("model")
        if model is None:
            apply_point_defaults(device)
            continue
        model_path = (*path, "model")
        found = find_model(str(model), dirs) if isinstance(model, str) else None
        if found is None:
            suggestion = did_you_mean(str(model), known_models(dirs))
            problems.append(
                Problem(
                    mark_at(doc, model_path),
                    field_path(doc.data, model_path),
                    f"unknown device model {model!r}; the catalogue ({', '.join(map(str, dirs))}) "
                    f"has: {', '.join(known_models(dirs)) or 'nothing'}{suggestion}",
                )
            )
            continue
        try:
            catalogue = read_yaml(found)
        except ReadError as exc:
            problems.append(_read_problem(exc, " in catalogue"))
            continue
        for issue in merge_model(doc, path, catalogue):
            source = issue.in_catalogue or doc
            problems.append(
                Problem(mark_at(source, issue.path), ".".join(map(str, issue.path)), issue.message)
            )
    return problems


def _problems(doc: Located, errors: list[Any], root: type[BaseModel] = SiteConfig) -> list[Problem]:
    """Map pydantic's errors; a "missing" key that a misspelt key's hint already names is
    left out, so `adress: 4` gives one problem, not two."""
    hinted: set[Path_] = set()
    # Worked out once per unknown key, and the allowed keys once per mapping: a generated
    # file may have thousands of unknown keys in one mapping.
    allowed: dict[Path_, list[str]] = {}
    close: dict[Path_, list[str]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            path = _data_path(doc.data, tuple(error["loc"]), error["type"])
            if path[:-1] not in allowed:
                allowed[path[:-1]] = _allowed_keys(doc.data, path[:-1], root)
            close[path] = difflib.get_close_matches(str(path[-1]), allowed[path[:-1]], 1, 0.6)
            hinted.update((*path[:-1], word) for word in close[path])
    return [
        _problem(doc, error, root, (allowed, close))
        for error in errors
        if not (
            error["type"] == "missing"
            and _data_path(doc.data, tuple(error["loc"]), "missing") in hinted
        )
    ]


def _problem(
    doc: Located,
    error: Any,
    root: type[BaseModel] = SiteConfig,
    known: tuple[dict[Path_, list[str]], dict[Path_, list[str]]] | None = None,
) -> Problem:
    """One pydantic error as a problem; `known` has the allowed keys of mappings and the
    close matches of unknown keys where `_problems` has found them already."""
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind = error["type"]
    path = _data_path(doc.data, loc, kind)
    found = error.get("input")
    if kind == "extra_forbidden":
        key = str(path[-1])
        allowed_at, close = known or ({}, {})
        allowed = allowed_at.get(path[:-1])
        if allowed is None:
            allowed = _allowed_keys(doc.data, path[:-1], root)
        words = close.get(path)
        suggestion = did_you_mean(key, allowed) if words is None else hint(words)
        listing = f"; expected one of: {', '.join(sorted(allowed))}" if allowed else ""
        message = f"unknown field {key!r}{suggestion}{listing}"
        return Problem(mark_at(doc, path, key=True), field_path(doc.data, path), message)
    if kind == "missing" and path[-1:] == ("points",) and len(path) == 3:
        return Problem(
            mark_at(doc, path[:-1]),
            field_path(doc.data, path),
            "required field is missing: list the device's points, or name a "
            "catalogue model with `model:` (edge-agent check shows the models)",
        )
    if kind == "missing":
        return Problem(
            mark_at(doc, path[:-1]), field_path(doc.data, path), "required field is missing"
        )
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        tag = str(ctx.get("discriminator", "driver")).strip(chr(39))
        message = f"unknown {tag} {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
        field = (*path, tag)
        return Problem(mark_at(doc, field), field_path(doc.data, field), message)
    plain = {
        "model_type": "expected a mapping (indented `key: value` lines)",
        "model_attributes_type": "expected a mapping (indented `key: value` lines)",
        "dict_type": "expected a mapping (indented `key: value` lines)",
        "list_type": "expected a list (lines starting with `- `)",
    }
    if kind in plain:
        return Problem(
            mark_at(doc, path), field_path(doc.data, path), f"{plain[kind]}; found {_shown(found)}"
        )
    if kind == "too_short":
        least = error.get("ctx", {}).get("min_length", 1)
        return Problem(
            mark_at(doc, path),
            field_path(doc.data, path),
            f"expected at least {least} item{'s' if least != 1 else ''}; found none",
        )
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return Problem(
            mark_at(doc, path),
            field_path(doc.data, path),
            f"expected text matching {pattern} (lower-case letters, digits, '-', '_' "
            f"for names); found {_shown(found)}",
        )
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input should be"):
        message = "expected" + message.removeprefix("Input should be")
    if kind == "finite_number":
        message += " (not .inf or .nan, and within a float's range)"
    limit = error.get("ctx", {}).get("le")
    seconds = bool(path) and str(path[-1]).endswith("_s")
    if kind == "less_than_equal" and seconds and limit is not None:
        message += f" s{_in_days(limit)}"
    if kind not in ("value_error", "assertion_error") and not isinstance(found, dict | list):
        message += f"; found {_shown(found)}"
    return Problem(mark_at(doc, path), field_path(doc.data, path), message)


def _shown(found: Any) -> str:
    """The value found, as written in a message: long text is cut, not printed whole."""
    text = repr(found)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"


def _in_days(seconds: float) -> str:
    days = seconds / 86_400
    if days == 1:
        return " (a day)"
    return f" ({days:g} days)" if days > 1 and days == int(days) else ""


def _data_path(data: Any, loc: tuple[str | int, ...], kind: str) -> Path_:
    """Pydantic's loc with union tags removed: the path as it stands in the data."""
    path: list[str | int] = []
    for index, part in enumerate(loc):
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        ):
            data = data[part]  # type: ignore[index]
        elif kind == "missing" and index == len(loc) - 1:
            pass  # the missing key ends the path
        else:
            continue  # a discriminator tag that pydantic inserts for unions
        path.append(part)
    return tuple(path)


def _allowed_keys(data: Any, path: Path_, root: type[BaseModel] = SiteConfig) -> list[str]:
    """The field names of the model that validates the mapping at `path`."""
    annotation: Any = root
    for part in path:
        annotation = choose(annotation, data)
        if annotation is None:
            return []
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif get_origin(annotation) in (list, tuple, dict):
            args = get_args(annotation)
            annotation = args[-1] if get_origin(annotation) is dict else args[0]
        data = data[part] if isinstance(data, dict | list) else None  # type: ignore[index]
    annotation = choose(annotation, data)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Unique, in file order: the site file first, then any catalogue file."""
    unique = {str(p): p for p in problems}.values()
    return sorted(unique, key=lambda p: (p.mark.file, p.mark.line, p.mark.column))
