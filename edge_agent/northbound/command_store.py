"""The park's accepted commands on disk, so that a restart or a crash forgets none.

A demand-response event accepted at 16:50 for 17:00 must hold at 17:00 even if the agent was
restarted at 16:55; an override must keep its load off; advisory mode must stay advisory.
The file holds every accepted command still in force and the answer it was given, written
whole to a temporary file, flushed to the disk and renamed over the old one, so that a crash
mid-write leaves the old file or the new one, never half of either.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CommandStore", "Stored"]

log = logging.getLogger(__name__)

SCHEMA = "edge-agent/commands/1"


@dataclass(slots=True)
class Stored:
    """What the store gives back at a start: each accepted command as it came (its JSON)
    with the answer it got, in the order accepted."""

    commands: list[tuple[str, str]] = field(default_factory=list)
    """(the command's JSON, the answer's JSON)."""


class CommandStore:
    """A JSON file beside the outbox; `None` as the path keeps nothing (a test, a bench)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> Stored:
        """The commands kept by the last run; nothing if there is no file. A file that cannot
        be read is set aside (renamed `.bad`) and said so: the agent starts without the
        commands rather than not at all, and the park is told by the log."""
        if self.path is None or not self.path.exists():
            return Stored()
        try:
            document = json.loads(self.path.read_bytes())
            if not isinstance(document, dict) or document.get("schema") != SCHEMA:
                raise ValueError(f"not an {SCHEMA} document")
            kept = [(str(c["command"]), str(c["answer"])) for c in document["accepted"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_suffix(self.path.suffix + ".bad")
            log.error(
                "the accepted commands in %s cannot be read (%s): set aside as %s; commands "
                "in force before the restart are lost and must be sent again",
                self.path,
                exc,
                aside,
            )
            self.path.replace(aside)
            return Stored()
        return Stored(kept)

    def save(self, stored: Stored) -> None:
        if self.path is None:
            return
        document = {
            "schema": SCHEMA,
            "accepted": [{"command": c, "answer": a} for c, a in stored.commands],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        with temporary.open("wb") as out:
            out.write(json.dumps(document, indent=1).encode())
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
