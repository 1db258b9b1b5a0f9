"""SimClock: time moves only when told, in deadline order, and waits for woken tasks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from edge_agent.clock import SimClock, next_boundary
from tests.conftest import START


async def test_sleepers_wake_in_deadline_order_at_their_deadline(clock: SimClock) -> None:
    woke: list[tuple[str, datetime]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    async with asyncio.TaskGroup() as group:
        for name, seconds in (("c", 3), ("a", 1), ("b", 2)):
            clock.track(group.create_task(sleeper(name, seconds)))
        await clock.advance(2.5)
        assert [n for n, _ in woke] == ["a", "b"]
        assert clock.now() == START + timedelta(seconds=2.5)
        await clock.advance(10)
    assert woke == [
        ("a", START + timedelta(seconds=1)),
        ("b", START + timedelta(seconds=2)),
        ("c", START + timedelta(seconds=3)),
    ]


async def test_advance_waits_for_real_io_done_by_a_woken_task(clock: SimClock) -> None:
    """A woken task's work happens inside the instant it was woken at."""
    seen: list[datetime] = []
    io_done = asyncio.Event()

    async def poller() -> None:
        for _ in range(3):
            await clock.sleep(1)
            # Real asynchronous work that takes real time: a server round trip.
            reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
            writer.write(b"x")
            await reader.read(1)
            writer.close()
            await writer.wait_closed()
            seen.append(clock.now())
        io_done.set()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(1))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    server_port = server.sockets[0].getsockname()[1]
    async with server, asyncio.TaskGroup() as group:
        clock.track(group.create_task(poller()))
        await clock.advance(3)
        assert io_done.is_set()
    assert seen == [START + timedelta(seconds=s) for s in (1, 2, 3)]


async def test_a_task_that_never_parks_is_reported(clock: SimClock) -> None:
    stuck = SimClock(START, settle_timeout_s=0.05)
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    task = asyncio.create_task(hangs(), name="hangs")
    stuck.track(task)
    with pytest.raises(RuntimeError, match="hangs"):
        await stuck.advance(1)
    task.cancel()


def test_boundaries_are_aligned_to_the_epoch() -> None:
    now = datetime(2026, 3, 2, 8, 0, 7, 500000, tzinfo=UTC)
    assert next_boundary(now, 60) == datetime(2026, 3, 2, 8, 1, tzinfo=UTC)
    assert next_boundary(now, 1) == datetime(2026, 3, 2, 8, 0, 8, tzinfo=UTC)
    assert next_boundary(datetime(2026, 3, 2, 8, 15, tzinfo=UTC), 900) == datetime(
        2026, 3, 2, 8, 30, tzinfo=UTC
    )
