"""The outbox between the summariser and the publisher.

A message leaves the outbox only when the publisher acknowledges it, which it does after the
broker has acknowledged the publish (QoS 1). Until then it is taken again after a reconnect,
in order. This is the interface; `MemoryOutbox` keeps messages while the process lives.
"""

from __future__ import annotations

import asyncio
import itertools
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

    async def wait_empty(self) -> None:
        """Return when every message has been acknowledged."""
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

    async def put(self, topic: str, payload: bytes) -> None:
        message = Message(next(self._ids), topic, payload)
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
