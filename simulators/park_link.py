"""The park operator's side of the broker, on a bench: summaries in, commands out, answers in.

One MQTT client subscribes every factory's device summaries and command responses. After a
broker outage it connects again when told to, as an operator's system would; a summary sent
twice (a batch repeated after a dropped link) is counted once, by its site and `seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict, deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiomqtt

from edge_agent.northbound.topics import Topics

if TYPE_CHECKING:
    from edge_agent.agent import Agent

__all__ = ["ParkLink"]

SETTLE_TIMEOUT_S = 30.0
"""Real seconds for the agents' outboxes to empty and their summaries to arrive."""


class ParkLink:
    """`async with ParkLink(port, topics) as link:`; `summaries` fills while connected."""

    def __init__(self, port: int, topics: list[Topics]) -> None:
        self._port = port
        self._topics = {t.site: t for t in topics}
        self.summaries: dict[str, list[dict[str, Any]]] = {t.site: [] for t in topics}
        """Device summaries, by site."""
        self.site_summaries: dict[str, list[dict[str, Any]]] = {t.site: [] for t in topics}
        """Site summaries (the incomer, and what control did and why), by site."""
        self.arrivals = 0
        """Summary messages received, repeats included: one per PUBACK an agent had."""
        self.duplicates = 0
        self._seen: set[tuple[str, int]] = set()
        self._responses: dict[tuple[str, str], deque[dict[str, Any]]] = defaultdict(deque)
        self._changed = asyncio.Event()
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(aiomqtt.Client("127.0.0.1", self._port))
        for topics in {(t.prefix, t.park) for t in self._topics.values()}:
            prefix, park = topics
            await client.subscribe(f"{prefix}/{park}/+/devices/+/summary", qos=1)
            await client.subscribe(f"{prefix}/{park}/+/summary", qos=1)
            await client.subscribe(f"{prefix}/{park}/+/command-responses", qos=1)
        reader = asyncio.create_task(self._read(client), name="park link")
        stack.push_async_callback(_cancel, reader)
        self._stack, self._client = stack, client

    async def disconnect(self) -> None:
        """Leave; after a broker outage the client is already cut off, which is fine."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()

    async def send(self, site: str, command: dict[str, Any]) -> None:
        """Publish `command` on the site's command topic for its type, as JSON, QoS 1."""
        assert self._client is not None, "the park link is not connected"
        topic = self._topics[site].commands.removesuffix("+") + str(command["type"])
        await self._client.publish(topic, json.dumps(command), qos=1)

    async def response(self, site: str, command_id: str) -> dict[str, Any]:
        """The next answer of `site` to the command `command_id` not yet taken."""
        waiting = self._responses[(site, command_id)]
        await self._until(lambda: bool(waiting))
        return waiting.popleft()

    async def settle(self, agents: list[Agent], timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Return once every agent's outbox is empty and all they published has arrived."""

        async with asyncio.timeout(timeout_s):
            while True:
                for agent in agents:
                    # Set in the same step as the publisher counts the batch it acknowledged.
                    await agent.outbox.wait_empty()
                published = sum(a.publisher.stats.published for a in agents)
                await self.arrived(published, timeout_s)
                if not any(a.outbox.depth() for a in agents):
                    return

    async def arrived(self, count: int, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Return once `count` summary messages (repeats included) have arrived."""
        async with asyncio.timeout(timeout_s):
            await self._until(lambda: self.arrivals >= count)

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    async def _read(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in client.messages:
                document = json.loads(bytes(message.payload))  # type: ignore[arg-type, unused-ignore]
                topic = str(message.topic)
                if topic.endswith("/command-responses"):
                    site = topic.rsplit("/", 2)[-2]
                    self._responses[(site, str(document.get("id")))].append(document)
                else:
                    self.arrivals += 1
                    key = (document["site"], int(document["seq"]))
                    if key in self._seen:
                        self.duplicates += 1
                    else:
                        self._seen.add(key)
                        kept = self.summaries if "device" in document else self.site_summaries
                        kept[document["site"]].append(document)
                self._changed.set()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
