"""Logging for a gateway left alone for months: structured, located, and not flooded.

- `--log-format json`: one JSON object per line (ts, level, logger, msg, and the device's
  site / device / line / unit / node_id / address / endpoint where the record has them), for
  journald, Loki or any log shipper;
- text (the default): the usual line, followed by the location fields the message does not
  already name, so a person reading it sees which device, unit and address;
- the site comes from a context variable the agent sets when it starts, so records from
  drivers, which do not know their site, carry it too (and the demo's three agents in one
  process each name their own);
- the same warning or error (the whole message, about the same site and device), repeated
  within `window_s`, is logged once, and the next one after the window says how many more
  like it were folded. Two messages that differ in anything (another address, another
  command id, another reason) are never folded together.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TextIO

__all__ = [
    "FIELDS",
    "ContextFilter",
    "JsonFormatter",
    "RepeatFilter",
    "TextFormatter",
    "current_site",
    "end_folds",
    "setup_logging",
]

FIELDS = ("site", "device", "line", "unit", "node_id", "point", "address", "endpoint")
"""Record attributes (set with `extra=`) that say where a fault is; in this order on output."""

current_site: ContextVar[str | None] = ContextVar("edge_agent_site", default=None)
"""Set by `Agent.run`; tasks it starts inherit it."""

LogFormat = Literal["text", "json"]


class ContextFilter(logging.Filter):
    """Adds `site` from `current_site` to a record that has none. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "site", None) in (None, ""):
            site = current_site.get()
            if site is not None:
                record.site = site
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {
        name: value
        for name in FIELDS
        if (value := getattr(record, name, None)) is not None and value != ""
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-03-02 08:00:01,002 WARNING edge_agent.polling: <message> [unit=3 address=...]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        message = record.getMessage()
        missing = [
            f"{name}={value}"
            for name, value in _fields(record).items()
            if str(value) not in message
        ]
        if not missing:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the context
        return f"{head} [{' '.join(missing)}]{newline}{rest}"


@dataclass(slots=True)
class _Seen:
    since: float
    record: logging.LogRecord
    """The record that opened the window: what a fold's end repeats."""
    folded: int = 0


class RepeatFilter(logging.Filter):
    """Fold repeats of one warning or error: keyed on (logger, the whole message, and every
    location field).

    The first record of a key passes; the same key again within `window_s` is dropped and
    counted; the first one after the window passes with `(and N more like it in the last
    W s)` appended, and opens a new window. INFO and DEBUG always pass. `monotonic` is
    injectable so tests fold on a clock they move.
    """

    def __init__(
        self,
        window_s: float = 60.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        level: int = logging.WARNING,
        max_keys: int = 1000,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self._monotonic = monotonic
        self._level = level
        self._max_keys = max_keys
        self._seen: dict[tuple[str, str, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "fold_end", False):
            return True  # the end of a fold, made here: it passes
        if record.levelno < self._level:
            return True
        where = "/".join(str(getattr(record, name, "")) for name in FIELDS)
        # A message may name what makes it the same failure (`extra={"fold_as": ...}`), so
        # a retry's attempt counter and delay do not make every line of an outage new.
        key = (record.name, str(getattr(record, "fold_as", None) or record.getMessage()), where)
        now = self._monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen.since < self.window_s:
            seen.folded += 1
            return False
        if seen is not None and seen.folded:
            record.msg = (
                f"{record.getMessage()} (and {seen.folded} more like it in the last "
                f"{self.window_s:g} s)"
            )
            record.args = None
        self._forget_old(now)
        self._seen[key] = _Seen(now, record)
        self._end_folds(now)
        return True

    def _end_folds(self, now: float) -> None:
        """Every fold whose window is over says how many it folded, now that the log moves
        on: a burst followed by silence is not left at its first line."""
        for seen in self._seen.values():
            if seen.folded and now - seen.since >= self.window_s:
                self._say_end(seen)

    def flush(self) -> None:
        """Say every fold's count now, its window over or not: at a stop."""
        for seen in self._seen.values():
            if seen.folded:
                self._say_end(seen)

    def _say_end(self, seen: _Seen) -> None:
        first = seen.record
        end = logging.makeLogRecord(first.__dict__)
        end.msg = (
            f"{first.getMessage()} (and {seen.folded} more like it in "
            f"{self.window_s:g} s; none since)"
        )
        end.args = None
        end.fold_end = True
        seen.folded = 0
        logging.getLogger(first.name).handle(end)

    def _forget_old(self, now: float) -> None:
        """Bound the memory: past `max_keys`, keys whose window is over (and whose folded
        count is then lost) go first."""
        if len(self._seen) < self._max_keys:
            return
        for key in [k for k, s in self._seen.items() if now - s.since >= self.window_s]:
            del self._seen[key]
        while len(self._seen) >= self._max_keys:
            del self._seen[next(iter(self._seen))]


def setup_logging(
    level: str | int = "INFO",
    log_format: LogFormat = "text",
    *,
    stream: TextIO | None = None,
    repeat_window_s: float = 60.0,
    force: bool = False,
) -> logging.Handler | None:
    """Give the root logger one handler that writes `log_format` to `stream` (stderr, which
    systemd hands to the journal), and return it.

    Like `logging.basicConfig`, it leaves a root logger that someone else has configured
    alone (a test runner capturing logs, an embedding application) and returns None, unless
    `force`; a handler it installed before is replaced."""
    root = logging.getLogger()
    foreign = [h for h in root.handlers if not getattr(h, "edge_agent_handler", False)]
    if foreign and not force:
        return None
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.edge_agent_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    folds = RepeatFilter(repeat_window_s)
    handler.addFilter(folds)
    handler.edge_agent_folds = folds  # type: ignore[attr-defined]
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def end_folds() -> None:
    """At exit: every fold still open says its count (the handler `setup_logging` made)."""
    for handler in logging.getLogger().handlers:
        folds = getattr(handler, "edge_agent_folds", None)
        if isinstance(folds, RepeatFilter):
            folds.flush()
