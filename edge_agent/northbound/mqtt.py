"""The only module that imports aiomqtt: drains the outbox into the park's broker.

A message is acknowledged to the outbox only after the broker's PUBACK (QoS 1), so a
connection lost mid-batch leaves the unacknowledged rest in the outbox, to be sent again, in
order, after the reconnect. The status topic is retained: `online` on connect, and the
broker publishes the Last Will `offline` if the agent disappears without saying goodbye.

Reconnects back off with jitter, capped at `RECONNECT_CAP_S` whatever `reconnect_max_s`
says: a broker that has come back is reached again within about ten seconds, however long it
was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

import aiomqtt

from edge_agent import __version__
from edge_agent.backoff import Backoff
from edge_agent.clock import Clock
from edge_agent.config.schema import BrokerConfig, SiteInfo

from .commands import Commands
from .outbox import Outbox
from .payloads import Status
from .topics import Topics

__all__ = ["RECONNECT_CAP_S", "MqttPublisher", "PublishStats", "broker_backoff"]

log = logging.getLogger(__name__)

_BATCH = 100
_SHORT_LIVED_S = 5.0
T = TypeVar("T")

RECONNECT_CAP_S = 10.0
"""The longest wait between two connection attempts. The outbox keeps every summary through
an outage, so a longer wait saves the broker nothing and only delays the backlog; full
jitter up to this cap still spreads a park's agents after a broker restart."""


def broker_backoff(broker: BrokerConfig, *, rng: random.Random | None = None) -> Backoff:
    """The reconnect backoff: `reconnect_initial_s` doubling up to `reconnect_max_s`, and
    never more than `RECONNECT_CAP_S`. `rng` makes the jitter repeatable."""
    cap = min(broker.reconnect_max_s, RECONNECT_CAP_S)
    initial = min(broker.reconnect_initial_s, cap)
    return Backoff(initial, cap) if rng is None else Backoff(initial, cap, rng=rng)


@dataclass(slots=True)
class PublishStats:
    connected: bool = False
    published: int = 0
    connects: int = 0
    failures: int = 0
    last_error: str | None = None


class MqttPublisher:
    def __init__(
        self,
        broker: BrokerConfig,
        site: SiteInfo,
        outbox: Outbox,
        clock: Clock,
        backoff: Backoff | None = None,
        *,
        commands: Commands | None = None,
    ) -> None:
        self._broker = broker
        self._site = site
        self._outbox = outbox
        self._clock = clock
        self._backoff = backoff or broker_backoff(broker)
        self._topics = Topics(broker.topic_prefix, site.park, site.name)
        self.stats = PublishStats()
        self._commands = commands
        self.ready = asyncio.Event()
        """Set while connected, with the command topics subscribed."""
        self._stopping = asyncio.Event()

    def _status(self, state: Literal["online", "offline"], at: datetime | None) -> bytes:
        status = Status(
            state=state,
            park=self._site.park,
            site=self._site.name,
            agent_version=__version__,
            at=at,
        )
        return status.model_dump_json(by_alias=True).encode()

    def _identifier(self) -> str:
        return self._broker.client_id or f"edge-{self._site.park}-{self._site.name}"

    def _client(self) -> aiomqtt.Client:
        password = self._broker.password.get_secret_value() if self._broker.password else None
        tls = self._broker.tls
        client = aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            protocol=(
                aiomqtt.ProtocolVersion.V5
                if self._broker.protocol == "5"
                else aiomqtt.ProtocolVersion.V311
            ),
            tls_params=None
            if tls is None
            else aiomqtt.TLSParameters(
                ca_certs=str(tls.ca),
                certfile=str(tls.certificate) if tls.certificate else None,
                keyfile=str(tls.private_key) if tls.private_key else None,
            ),
            identifier=self._identifier(),
            username=self._broker.username,
            password=password,
            keepalive=self._broker.keepalive_s,
            will=aiomqtt.Will(
                self._topics.status, self._status("offline", None), qos=1, retain=True
            ),
            timeout=10,
            max_inflight_messages=_BATCH,
        )
        client.pending_calls_threshold = _BATCH * 2  # a pipelined batch is not a backlog
        return client

    def stop(self) -> None:
        """Finish: send what the outbox holds while connected, say `offline`, disconnect.

        `run()` then returns by itself; the caller bounds the wait and cancels past it (the
        broker's Last Will says `offline` then)."""
        self._stopping.set()

    async def run(self) -> None:
        """Publish until `stop()` (or cancellation)."""
        connected_at = 0.0
        while not self._stopping.is_set():
            try:
                async with self._client() as client:
                    self.stats.connected = True
                    self.stats.connects += 1
                    # Real time on purpose: a connection that a broker drops at once is a
                    # fact of the network, which a simulated clock standing still would hide.
                    connected_at = time.monotonic()
                    self._backoff.reset()
                    log.info("connected to broker %s:%d", self._broker.host, self._broker.port)
                    await client.publish(
                        self._topics.status,
                        self._status("online", self._clock.now()),
                        qos=1,
                        retain=True,
                    )
                    await self._serve(client)
                    await client.publish(
                        self._topics.status,
                        self._status("offline", self._clock.now()),
                        qos=1,
                        retain=True,
                    )
            except aiomqtt.MqttError as exc:
                if self.stats.connected and time.monotonic() - connected_at < _SHORT_LIVED_S:
                    log.warning(
                        "the broker dropped the connection %.1f s after accepting it: is "
                        "another client connected with the same client id (%s)? Each gateway "
                        "needs its own site name or broker.client_id",
                        time.monotonic() - connected_at,
                        self._identifier(),
                    )
                self.stats.connected = False
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                delay = self._backoff.next_delay_s()
                log.warning(
                    "broker %s:%d: %s; %d waiting in the outbox; retrying in %.1f s",
                    self._broker.host,
                    self._broker.port,
                    exc,
                    self._outbox.depth(),
                    delay,
                )
                await self._wait_or_stop(self._clock.sleep(delay))
            finally:
                self.stats.connected = False
                self.ready.clear()

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Drain the outbox and, beside it, answer the park's commands, on one connection."""
        connected_at = self._clock.now().timestamp()  # the outbox stamps on the same clock
        if self._commands is None:
            self.ready.set()
            await self._drain(client, connected_at=connected_at)
            return
        await client.subscribe(self._topics.commands, qos=1)
        self.ready.set()
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(self._answer_commands(client), name="commands")
                await self._drain(client, connected_at=connected_at)
                reader.cancel()
        except* aiomqtt.MqttError as failed:
            raise failed.exceptions[0] from None

    async def _answer_commands(self, client: aiomqtt.Client) -> None:
        assert self._commands is not None
        async for message in client.messages:
            topic_type = message.topic.value.rsplit("/", 1)[-1]
            response = await self._commands.answer(
                bytes(message.payload), self._clock, topic_type, retained=message.retain
            )
            if response is not None:
                await client.publish(
                    self._topics.command_responses, response.model_dump_json(by_alias=True), qos=1
                )

    async def _drain(self, client: aiomqtt.Client, *, connected_at: float) -> None:
        """Publish from the outbox until stopped and the outbox is empty. A message put
        before this connection was up waited through an outage: it goes out marked
        historical, so the park can tell a late summary from a live one."""
        while True:
            batch = await self._wait_or_stop(self._outbox.take(_BATCH))
            if batch is None:
                if not self._outbox.depth():
                    return
                batch = await self._outbox.take(_BATCH)
            # The batch goes out pipelined (sent in order, acknowledged together); if the link
            # drops mid-batch, none of it is acknowledged and all of it is sent again, with
            # the same sequence numbers, which a subscriber drops when it has them already.
            await asyncio.gather(
                *(
                    client.publish(
                        message.topic,
                        _mark_historical(message.payload)
                        if message.created < connected_at
                        else message.payload,
                        qos=1,
                    )
                    for message in batch
                )
            )
            await self._outbox.ack([message.id for message in batch])
            self.stats.published += len(batch)

    async def _wait_or_stop(self, awaitable: Awaitable[T]) -> T | None:
        """`awaitable`'s result, or None as soon as `stop()` is called."""
        work = asyncio.ensure_future(awaitable)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        return None if work.cancelled() else work.result()


def _mark_historical(payload: bytes) -> bytes:
    try:
        document = json.loads(payload)
    except ValueError:
        return payload
    if isinstance(document, dict):
        document["historical"] = True
        return json.dumps(document, separators=(",", ":")).encode()
    return payload
