"""The outbox between the summariser and the publisher.

A message leaves the outbox only when the publisher acknowledges it, which it does after the
broker has acknowledged the publish (QoS 1). Until then it is taken again after a reconnect,
in order. This is the interface; `SqliteOutbox` (sqlite_outbox.py) keeps messages on disk
across restarts, `MemoryOutbox` only while the process lives (tests, `--no-publish`).

Summaries go in through `put_summaries`, one interval's at a time, all or nothing: each takes
the next `seq` as it is stored, and the outbox records the interval as summarised in the same
step. A restart reads that record (`last_summarised`) to summarise, as missing, every
interval between the last one summarised and the first the new process closes, so that a
stop never makes a hole that the sequence does not show.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from edge_agent.clock import Clock, SystemClock

__all__ = ["MemoryOutbox", "Message", "Outbox", "Payload", "Summarised"]

Payload = Callable[[int, int], bytes]
"""A summary's payload, made from its `seq` and the `outbox_dropped` count it reports."""


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    """Increasing in the order messages were put."""
    topic: str
    payload: bytes
    created: float = 0.0
    """Unix time the message was put: a replay after an outage is marked historical."""


@dataclass(frozen=True, slots=True)
class Summarised:
    """The outbox's record of the last interval summarised, kept with the messages."""

    interval_end: datetime
    state: str
    """What the summariser keeps to go on after a restart (its own JSON)."""


class Outbox(Protocol):
    clock: Clock
    """What stamps a message's `created`: the agent's one clock (the agent sets it), so that
    a simulated day's outbox ages and historical marks are on simulated time."""

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

    async def put_summaries(
        self, summaries: Sequence[tuple[str, Payload]], *, interval_end: datetime, state: str
    ) -> list[int]:
        """Store summaries (topic, payload maker), each with the next seq in turn and the
        dropped count since the last call, and record `interval_end` (the last interval
        they summarise) with `state`, all in one step: a kill midway stores none of them and
        leaves the record as it was. Returns the seqs given."""
        ...

    async def last_summarised(self) -> Summarised | None:
        """The record `put_summaries` left; None before the first."""
        ...


class MemoryOutbox:
    """Bounded: past `max_messages` the oldest is dropped and counted in `dropped`."""

    def __init__(self, *, max_messages: int = 100_000, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._messages: OrderedDict[int, Message] = OrderedDict()
        self._ids = itertools.count(1)
        self._max = max_messages
        self._changed = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.dropped = 0
        self._seq = itertools.count(1)
        self._reported = 0
        self._summarised: Summarised | None = None

    async def put(self, topic: str, payload: bytes) -> None:
        message = Message(next(self._ids), topic, payload, self.clock.now().timestamp())
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

    async def put_summaries(
        self, summaries: Sequence[tuple[str, Payload]], *, interval_end: datetime, state: str
    ) -> list[int]:
        dropped = await self.take_dropped()
        made = []
        for topic, make in summaries:
            seq = next(self._seq)
            made.append((seq, topic, make(seq, dropped)))
        for _, topic, payload in made:
            await self.put(topic, payload)
        self._summarised = Summarised(interval_end, state)
        return [seq for seq, _, _ in made]

    async def last_summarised(self) -> Summarised | None:
        return self._summarised
