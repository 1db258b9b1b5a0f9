"""The outbox between the summariser and the publisher.

A message leaves the outbox only when the publisher acknowledges it, which it does after the
broker has acknowledged the publish (QoS 1). Until then it is taken again after a reconnect,
in order. This is the interface; `SqliteOutbox` (sqlite_outbox.py) keeps messages on disk
across restarts, `MemoryOutbox` only while the process lives (tests, `--no-publish`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MemoryOutbox", "Message", "Outbox"]


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    """Increasing in the order messages were put."""
    topic: str
    payload: bytes
    created: float = 0.0
    """Unix time the message was put: a replay after an outage is marked historical."""


class Outbox(Protocol):
    async def put(self, topic: str, payload: bytes) -> None:
        """Store a message; when this returns, the message is the outbox's to keep."""
        ...

    async def take(self, limit: int) -> list[Message]:
        """The oldest unacknowledged messages, at most `limit`; waits while there are none."""
        ...

    async def ack(self, ids: Sequence[int]) -> None:
        """The broker has these: forget them."""
        ...

    def depth(self) -> int:
        """Messages waiting."""
        ...

    def oldest_created(self) -> float | None:
        """Unix time the oldest waiting message was put, None when empty: how far behind
        the park is, for the metrics."""
        ...

    async def wait_empty(self) -> None:
        """Return when every message has been acknowledged."""
        ...

    async def next_seq(self) -> int:
        """The next summary sequence number; a durable outbox keeps it across restarts."""
        ...

    async def take_dropped(self) -> int:
        """Messages dropped by the bounds since the last call, to report in a summary."""
        ...


class MemoryOutbox:
    """Bounded: past `max_messages` the oldest is dropped and counted in `dropped`."""

    def __init__(self, *, max_messages: int = 100_000) -> None:
        self._messages: OrderedDict[int, Message] = OrderedDict()
        self._ids = itertools.count(1)
        self._max = max_messages
        self._changed = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.dropped = 0
        self._seq = itertools.count(1)
        self._reported = 0

    async def put(self, topic: str, payload: bytes) -> None:
        message = Message(next(self._ids), topic, payload, time.time())
        self._messages[message.id] = message
        while len(self._messages) > self._max:
            self._messages.popitem(last=False)
            self.dropped += 1
        self._empty.clear()
        self._changed.set()

    async def take(self, limit: int) -> list[Message]:
        while not self._messages:
            self._changed.clear()
            await self._changed.wait()
        return list(itertools.islice(self._messages.values(), limit))

    async def ack(self, ids: Sequence[int]) -> None:
        for message_id in ids:
            self._messages.pop(message_id, None)
        if not self._messages:
            self._empty.set()

    async def wait_empty(self) -> None:
        await self._empty.wait()

    def depth(self) -> int:
        return len(self._messages)

    def oldest_created(self) -> float | None:
        return next(iter(self._messages.values())).created if self._messages else None

    async def next_seq(self) -> int:
        return next(self._seq)

    async def take_dropped(self) -> int:
        dropped, self._reported = self.dropped - self._reported, self.dropped
        return dropped
